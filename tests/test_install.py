"""The installed command works from any directory: the project is built into a wheel and
installed into a fresh virtualenv, offline, then `sesame config check`, `sesame simulate` and
`sesame demo` run from an empty temporary directory, with no clone in sight.

Built from a copy of the working tree as `scripts/dev.sh setup` leaves it (tracked files plus
the chart library npm put into sesame/dashboard/node_modules), with this environment's
setuptools (`--no-build-isolation --no-index`: nothing is downloaded). The fresh virtualenv
has no pip and no packages of its own: this environment's pip installs the wheel into it
(`pip --python`), and one .pth line lends it this environment's third-party packages, never
its editable `sesame` (a .pth line adds a folder; the editable install's own .pth files in
that folder are not run), as a test below checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.fixtures.e2e import demo_dashboard

ROOT = Path(__file__).resolve().parents[1]
CHART = Path("sesame/dashboard/node_modules/chart.js")


def run(*cmd: str | Path, cwd: Path, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kw)  # fmt: skip
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done


def _source_copy(dest: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) and the npm chart library."""
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for rel in filter(None, listed.stdout.split("\0")):
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet committed
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dest / rel)
        else:
            shutil.copy2(src, dest / rel)
    for rel in (CHART / "dist" / "chart.umd.min.js", CHART / "LICENSE.md"):
        assert (ROOT / rel).is_file(), f"{rel} missing: run scripts/dev.sh setup"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh virtualenv with the built wheel installed."""
    tmp = tmp_path_factory.mktemp("install")
    src = _source_copy(tmp / "src")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", tmp / "dist", src, cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("sesame-*.whl")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
        "--no-deps", "--no-index", wheel, cwd=tmp)  # fmt: skip
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    lend = run(venv / "bin" / "python", "-c", purelib, cwd=tmp).stdout.strip()
    (Path(lend) / "lent-dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    return venv / "bin"


def test_the_wheel_carries_every_file_of_the_package_and_the_chart_library(installed):
    (wheel,) = installed.parent.parent.glob("dist/sesame-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = run("git", "ls-files", "sesame", cwd=ROOT).stdout.split()
    # the reference venue, the dashboard's pages and scripts, the gate's systemd unit...
    assert "sesame/venues/grand-palais.toml" in tracked
    assert "sesame/gate/deploy/sesame-gate@.service" in tracked
    assert [f for f in tracked if f not in names] == []
    # ...and what npm put there for the dashboard to serve, with its licence
    assert {f"{CHART}/dist/chart.umd.min.js", f"{CHART}/LICENSE.md"} <= names


def test_the_installed_package_is_the_one_that_runs(installed, tmp_path):
    done = run(installed / "python", "-c", "import sesame; print(sesame.__file__)", cwd=tmp_path)
    assert Path(done.stdout.strip()).is_relative_to(installed.parent), done.stdout
    assert not Path(done.stdout.strip()).is_relative_to(ROOT)


def test_config_check_and_simulate_from_an_empty_directory(installed, tmp_path):
    done = run(installed / "sesame", "config", "check", cwd=tmp_path, timeout=60)
    assert "grand-palais" in done.stdout + done.stderr
    done = run(installed / "sesame", "simulate", "--in-memory", "--days", "1", "--scale", "0.01",
               cwd=tmp_path, timeout=120)  # fmt: skip
    summary = json.loads(done.stdout)
    assert summary["unique_visitors"] > 0 and summary["entries"] > 0, summary
    assert list(tmp_path.iterdir()) == [], "simulate --in-memory wrote into the working folder"


def test_demo_from_an_empty_directory_serves_the_dashboard_and_its_chart_library(
    installed, tmp_path
):
    proc = subprocess.Popen(
        [installed / "sesame", "demo", "--http-port", "0", "--speed", "600", "--scale", "0.05"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        url = password = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if found := demo_dashboard(line):
                url, password = found
        assert url, "".join(lines)
        c = httpx.Client(base_url=url, timeout=10)
        assert c.post("/login", json={"username": "demo", "password": password}).is_success
        page = c.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        for asset in re.findall(r'(?:src|href)="(/(?:static|vendor)/[^"]+)"', page.text):
            assert c.get(asset).status_code == 200, asset
        chart = c.get("/vendor/chart.js")
        assert chart.status_code == 200 and "Chart" in chart.text[:2000]
        assert chart.headers["content-type"].startswith("text/javascript")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert rc == 0, "".join(lines) + proc.stdout.read()
