"""A lane is online while its heartbeats arrive, whatever its Last Will says.

A gate publishes its status every `heartbeat_s` (5 s by default). Its Will (`online:
false`) is lost when the broker node holding the gate's connection dies (NATS, measured),
and a retained `online: true` would then stay forever. The counter therefore marks a lane
offline when it has heard no status for `silent_after` seconds, in its own record of the
lanes (`gates_seen`, what the dashboard's `/api/gates` shows). Pure bookkeeping on a
monotonic clock the caller passes in.
"""

from __future__ import annotations

SILENT_AFTER = 30.0  # seconds: six missed heartbeats at the default 5 s


class Liveness:
    def __init__(self, silent_after: float = SILENT_AFTER):
        self.silent_after = silent_after
        self._heard: dict[str, float] = {}
        self._online: dict[str, bool] = {}
        self.silent: set[str] = set()  # lanes marked offline for silence

    def heard(self, gate: str, now: float, online: bool) -> None:
        """A status arrived from `gate` (online or not, as it says)."""
        self._heard[gate] = now
        self._online[gate] = online
        self.silent.discard(gate)

    def newly_silent(self, now: float) -> list[str]:
        """Lanes that said they were online and have been silent too long, once each."""
        out = []
        for gate, t in self._heard.items():
            if self._online.get(gate) and gate not in self.silent and now - t > self.silent_after:
                self.silent.add(gate)
                out.append(gate)
        return sorted(out)
