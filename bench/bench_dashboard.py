"""Dashboard benchmarks (prints figures; no asserts). Figures go in bench/README.md.

1. Passage published -> number changed in the browser: a gate publishes a passage, the real
   counter commits it and publishes the zone's occupancy, the dashboard streams it, headless
   Chromium shows it. Median and p99 over N passages, one at a time. Also the dashboard's
   own share: an occupancy message published as the counter does -> number changed.
2. 50 concurrent viewers on /api/stream while occupancy updates arrive at 100 messages/s:
   the dashboard's CPU (it runs as `sesame dashboard` in its own process) and the delay
   from publish to arrival at each viewer.

    .venv/bin/python bench/bench_dashboard.py [--passages 200] [--viewers 50] [--rate 100]
                                              [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from sesame.broker.process import MosquittoProcess  # noqa: E402
from sesame.broker.setup import setup  # noqa: E402
from sesame.common import mqtt, wire  # noqa: E402
from sesame.common.net import free_port  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.dashboard.accounts import AccountStore  # noqa: E402

VENUE = load_venue(REPO / "config" / "grand-palais.toml")
T = wire.Topics(VENUE.id)
USERS = {"bench-safety": ("safety", "bench-password"), "bench-viewer": ("viewer", "bench-pass")}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(name: str, ms: list[float]) -> str:
    return (
        f"{name}: n={len(ms)} median {statistics.median(ms):.1f} ms, p99 {pct(ms, 99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_dashboard(tmp: Path, broker: MosquittoProcess, db: Path | None) -> tuple:
    accounts = tmp / "accounts.db"
    store = AccountStore(accounts)
    for name, (role, pw) in USERS.items():
        store.add_user(name, role, pw, replace=True)
    store.close()
    port = free_port()
    cmd = [sys.executable, "-m", "sesame", "dashboard", "--venue", str(REPO / "config" /
           "grand-palais.toml"), "--accounts", str(accounts), "--broker",
           broker.url("dashboard"), "--port", str(port)]  # fmt: skip
    if db:
        cmd += ["--db", str(db)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/login", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("dashboard did not start: " + proc.stderr.read().decode()[-500:])


def bench_browser(url: str, broker: MosquittoProcess, n: int, via_counter: bool) -> list[float]:
    from playwright.sync_api import sync_playwright

    gate = mqtt.connect(broker.url("gate-churchill-in-1"), "gate-churchill-in-1")
    pub = None if via_counter else mqtt.connect(broker.url("counter"), "bench-counter")
    lat: list[float] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url + "/login")
        page.fill("#username", "bench-safety")
        page.fill("#password", USERS["bench-safety"][1])
        page.click("#login-button")
        page.wait_for_selector("body[data-ready='1']")
        # record, in the page, the wall-clock time at which each figure appeared
        page.evaluate(
            """() => {
              window.__seen = {};
              const el = document.querySelector('#zone-nef .occupancy');
              new MutationObserver(() => {
                const v = el.textContent.replace(/[^0-9-]/g, '');
                const now = performance.timeOrigin + performance.now();
                if (!(v in window.__seen)) window.__seen[v] = now;
              }).observe(el, {childList: true, characterData: true, subtree: true});
            }"""
        )
        start = int(page.evaluate(
            "() => document.querySelector('#zone-nef .occupancy')"
            ".textContent.replace(/[^0-9-]/g, '') || '0'"
        ))  # fmt: skip
        epoch = f"b{int(time.time())}"
        for i in range(1, n + 1):
            target = start + i
            t0 = time.time() * 1000
            ts = datetime(2018, 11, 25, 12, 0, tzinfo=UTC).timestamp() + i
            if via_counter:
                ev = wire.Event("churchill-in-1", epoch, i, datetime.fromtimestamp(ts, UTC),
                                "passage", "outside", "nef", f"B{i}", "public")  # fmt: skip
                gate.publish(T.events("churchill-in-1"), ev.to_json(), 1, False)
            else:
                occ = wire.Occupancy("nef", target, 11000, "open", datetime.now(UTC))
                pub.publish(T.occupancy("nef"), occ.to_json(), 1, True)
            page.wait_for_function(
                "(v) => window.__seen[v] !== undefined",
                arg=str(target),
                timeout=10000,
                polling=5,
            )
            lat.append(page.evaluate("(v) => window.__seen[v]", str(target)) - t0)
        browser.close()
    gate.close()
    if pub:
        pub.close()
    return lat


async def viewer(url: str, cookies, lat: list[float], stop: asyncio.Event, counts: list[int]):
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=None) as c:
        async with c.stream("GET", "/api/stream") as r:
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if event == "snapshot":
                        counts[1] += 1
                elif line.startswith("data: ") and event == "zone":
                    # the occupancy's ts is the publish time: arrival - ts = delay
                    i = line.find('"ts":"')
                    ts = datetime.fromisoformat(line[i + 6 : line.index('"', i + 6)])
                    lat.append(time.time() * 1000 - ts.timestamp() * 1000)
                    counts[0] += 1
                if stop.is_set():
                    return


def bench_viewers(url: str, broker: MosquittoProcess, pid: int, viewers: int, rate: int,
                  seconds: float) -> None:  # fmt: skip
    r = httpx.post(url + "/login", json={"username": "bench-viewer",
                                         "password": USERS["bench-viewer"][1]})  # fmt: skip
    cookies = r.cookies
    lat: list[float] = []
    counts = [0, 0]  # updates received, viewers connected
    pub = mqtt.connect(broker.url("counter"), "bench-counter-2")
    zones = list(VENUE.zones)

    def publisher(stop: threading.Event, sent: list[int]):
        nxt = time.monotonic()
        i = 0
        while not stop.is_set():
            z = zones[i % len(zones)]
            occ = wire.Occupancy(z, 100 + i % 500, VENUE.zones[z].capacity, "open",
                                 datetime.now(UTC))  # fmt: skip
            pub.publish(T.occupancy(z), occ.to_json(), 1, True)
            i += 1
            sent[0] = i
            nxt += 1 / rate
            time.sleep(max(0.0, nxt - time.monotonic()))

    async def main():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(viewer(url, cookies, lat, stop, counts))
                 for _ in range(viewers)]  # fmt: skip
        deadline = time.monotonic() + 30
        while counts[1] < viewers and time.monotonic() < deadline:  # all past their snapshot
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        lat.clear()
        counts[0] = 0
        pstop, sent = threading.Event(), [0]
        th = threading.Thread(target=publisher, args=(pstop, sent), daemon=True)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        th.start()
        await asyncio.sleep(seconds)
        pstop.set()
        th.join()
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(3)  # let the tail arrive (the viewers share one Python process)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        expected = sent[0] * viewers
        print(
            f"{viewers} viewers, {sent[0] / (t1 - t0):.0f} occupancy msgs/s for {t1 - t0:.0f} s: "
            f"dashboard CPU {100 * (cpu1 - cpu0) / (t1 - t0):.0f}% of one core; "
            f"{counts[0]}/{expected} updates delivered"
        )
        print(summary("  publish -> viewer", lat))

    asyncio.run(main())
    pub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=200)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    from sesame.counter.service import Counter

    with tempfile.TemporaryDirectory(prefix="sesame-bench-dash-") as d:
        tmp = Path(d)
        setup(VENUE, tmp / "broker")
        broker = MosquittoProcess(tmp / "broker", run_dir=tmp / "mosquitto").start()
        db = tmp / "sesame.db"
        counter = Counter(VENUE, db, broker.url("counter"), tick_s=0.5, status_s=5).start()
        proc, url = start_dashboard(tmp, broker, db)
        try:
            print(f"cores: {os.cpu_count()}; dashboard pid {proc.pid} at {url}")
            lat = bench_browser(url, broker, args.passages, via_counter=True)
            print(summary("passage published -> number changed in Chromium (via the counter)", lat))
            counter.stop()
            lat = bench_browser(url, broker, args.passages, via_counter=False)
            print(
                summary("occupancy published -> number changed in Chromium (dashboard only)", lat)
            )
            bench_viewers(url, broker, proc.pid, args.viewers, args.rate, args.seconds)
        finally:
            if counter.running:
                counter.stop()
            proc.terminate()
            proc.wait(10)
            broker.close()


if __name__ == "__main__":
    main()
