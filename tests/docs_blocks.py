"""Run the fenced blocks of the project's Markdown as a user would: in a temporary copy of the
repository, one shell command at a time, in the order written.

Markers (HTML comments on the line before a block, invisible on GitHub):
  <!-- not run: REASON -->   a shell or Python block that cannot run on one machine (a relay
                             board, three machines, an excerpt); counted by the tests
  <!-- write: PATH -->       a file the text asks the reader to write (e.g. a TOML file)

`sh` blocks run command by command through bash (a trailing `\\` continues a command); a
`python` block runs as a script with the virtualenv's interpreter. Commands that stay in the
foreground (broker, counter, lane, dashboard, `mosquitto_sub`) are started in the background
by a `Background` rule, checked for what the text says they do, and stopped (SIGTERM) at the
end of the walk. Fixed ports of the text (the broker's 1884, the dashboard's 8080) are mapped
to free ones: the machine is shared, a test never takes a fixed port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHELL = {"sh", "bash", "shell"}
PYTHON = {"python"}
INERT = {"text", "json", "toml", "yaml", "csv", "ini"}  # shown, never executed
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*(not run|write):\s*(.+?)\s*-->$")


@dataclass
class Block:
    doc: str  # path relative to the repository
    line: int  # line of the opening fence (1-based)
    lang: str
    text: str
    not_run: str | None = None
    write: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in SHELL | PYTHON and self.not_run is None


def blocks(doc: str) -> list[Block]:
    """Every fenced block of a Markdown file, with the marker on the line before it."""
    lines = (REPO / doc).read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        b = Block(doc, i + 1, m.group(1), "\n".join(lines[i + 1 : j]) + "\n")
        prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = _MARK.match(prev)
        if mark:
            setattr(b, mark.group(1).replace(" ", "_"), mark.group(2))
        out.append(b)
        i = j + 1
    return out


def commands(block: Block) -> list[str]:
    """The shell commands of a block: continuation lines joined, comment lines dropped."""
    out: list[str] = []
    cur = ""
    for raw in block.text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(cur + line)
        cur = ""
    if cur:
        out.append(cur)
    return out


@dataclass
class Result:
    command: str
    rc: int
    out: str  # stdout and stderr together, as a terminal shows them
    seconds: float = 0.0


@dataclass
class Background:
    """A command that stays in the foreground: how to tell it is doing what the text says."""

    ready: Callable[[Walk, Running], None]  # raises AssertionError when it is not
    stdin: bool = False


@dataclass
class Running:
    command: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Walk:
    """One reader's terminal(s) in a copy of the repository."""

    root: Path
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    background: dict[str, Background] = field(default_factory=dict)  # command prefix -> rule
    prompts: dict[str, list[str]] = field(default_factory=dict)  # prefix -> lines typed at a tty
    running: list[Running] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)

    @classmethod
    def copy_of_repository(cls, root: Path, ports: dict[str, int]) -> Walk:
        """The files a reader has after `git clone` and `scripts/dev.sh setup`: config/ (the
        venue symlink resolved) and the virtualenv."""
        import shutil

        shutil.copytree(REPO / "config", root / "config", symlinks=False)
        (root / ".venv").symlink_to(Path(sys.prefix))  # the virtualenv running the tests
        (root / "tmp").mkdir()
        env = dict(os.environ)
        env["PATH"] = f"{root / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["TMPDIR"] = str(root / "tmp")  # what a command leaves running shows its path
        env.pop("PYTHONPATH", None)
        return cls(root=root, ports=ports, env=env)

    def substitute(self, text: str) -> str:
        for fixed, free in self.ports.items():
            text = re.sub(rf"(?<![\d.]){re.escape(fixed)}(?!\d)", str(free), text)
        return text

    def run_block(self, block: Block) -> list[Result]:
        assert block.runnable, block.where
        if block.lang in PYTHON:
            script = self.root / "tmp" / f"block-{block.line}.py"
            script.write_text(block.text, encoding="utf-8")
            return [self._run([sys.executable, str(script)], f"python {block.where}")]
        return [r for c in commands(block) if (r := self.run(c)) is not None]

    def write_block(self, block: Block) -> Path:
        path = self.root / block.write
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
        return path

    def run(self, command: str, background: bool = True) -> Result | None:
        """One command; None when it was started in the background."""
        cmd = self.substitute(command)
        for prefix, rule in self.background.items() if background else ():
            if _starts(cmd, prefix):
                self.start(cmd, rule)
                return None
        for prefix, typed in self.prompts.items():
            if _starts(cmd, prefix):
                return self._run_at_terminal(cmd, typed)
        return self._run(["bash", "-c", cmd], cmd)

    def _run(self, argv: list[str], label: str) -> Result:
        t0 = time.monotonic()
        p = subprocess.run(argv, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)  # fmt: skip
        r = Result(label, p.returncode, p.stdout, time.monotonic() - t0)
        self.results.append(r)
        return r

    def _run_at_terminal(self, cmd: str, typed: list[str]) -> Result:
        """A command that prompts (a password) on a pseudo-terminal: each line of `typed` is
        typed once a new prompt (text ending in ': ') shows, as a person would."""
        import pty
        import select

        master, slave = pty.openpty()
        p = subprocess.Popen(["bash", "-c", cmd], cwd=self.root, env=self.env, stdin=slave,
                             stdout=slave, stderr=slave, start_new_session=True)  # fmt: skip
        os.close(slave)
        out, answered, deadline = b"", 0, time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # the command exited and closed the terminal
                        break
                    if not chunk:
                        break
                    out += chunk
                prompts = out.count(b": ")
                if answered < len(typed) and prompts > answered and out.endswith(b": "):
                    os.write(master, (typed[answered] + "\n").encode())
                    answered += 1
                if p.poll() is not None and not ready:
                    break
            p.wait(timeout=10)
        finally:
            os.close(master)
        r = Result(cmd, p.returncode, out.decode(errors="replace").replace("\r\n", "\n"))
        self.results.append(r)
        return r

    def start(self, cmd: str, rule: Background) -> Running:
        log = self.root / "tmp" / f"bg-{len(self.running)}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=self.root, env=self.env,
                                    stdin=subprocess.PIPE if rule.stdin else subprocess.DEVNULL,
                                    stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        r = Running(cmd, proc, log)
        self.running.append(r)
        t0 = time.monotonic()
        try:
            rule.ready(self, r)
        except BaseException:
            raise AssertionError(f"{cmd}\n--- its output:\n{r.output()}") from None
        self.results.append(Result(f"[started] {cmd}", 0, "", time.monotonic() - t0))
        assert proc.poll() is None, f"{cmd} exited ({proc.returncode}):\n{r.output()}"
        return r

    def stop(self) -> list[tuple[str, int | None]]:
        """SIGTERM to each background command, last started first (as Ctrl-C in each
        terminal would); SIGKILL after 15 s. Returns (command, exit code)."""
        out = []
        for r in reversed(self.running):
            if r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGTERM)
                try:
                    r.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(r.proc.pid, signal.SIGKILL)
                    r.proc.wait()
                    out.append((r.command, None))
                    continue
            out.append((r.command, r.proc.returncode))
        self.running.clear()
        return out

    def leftovers(self) -> list[str]:
        """Processes still running whose command line names this copy (e.g. a broker a
        script started and did not stop), other than the background commands."""
        mine = {r.proc.pid for r in self.running}
        found = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) in mine or int(d.name) == os.getpid():
                continue
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(self.root) in cmdline:
                found.append(f"{d.name}: {cmdline}")
        return found

    def kill_leftovers(self) -> None:
        for line in self.leftovers():
            try:
                os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _starts(cmd: str, prefix: str) -> bool:
    """The command is `prefix` (also as .venv/bin/...), or runs it after `env ...` or a
    command substitution (`env $(sesame broker client-args F) mosquitto_sub ...`)."""
    if cmd.startswith(prefix) or cmd.startswith(".venv/bin/" + prefix):
        return True
    head = re.sub(r"\$\([^)]*\)", "", cmd).split()
    return cmd.startswith("env ") and prefix in " ".join(w for w in head if "=" not in w)


def wait_for(what: str, cond: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
