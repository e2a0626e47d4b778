"""Shared fixtures: a real daemon in a subprocess, on free loopback ports, stopped by pid."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

VENV_BIN = Path(sys.executable).parent
DANCODES = str(VENV_BIN / "dancodes")
DANCODES_CTL = str(VENV_BIN / "dancodes-ctl")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port, never one handed out before in this run: a config naming one port twice
    is refused, and the kernel may offer a just-closed port again."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


DEFAULT_PORTS = {"public": 8080, "opencode": 4096, "app": 4097}


def defaults_if_free() -> dict[str, int]:
    """The production ports when nothing listens on them (CI), else free ones (a dev's `make run`).

    DANCODES_TEST_FREE_PORTS=1 always takes free ones (several test runs on one machine at once).
    """
    if os.environ.get("DANCODES_TEST_FREE_PORTS"):
        return {}
    for port in DEFAULT_PORTS.values():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return {}
    return dict(DEFAULT_PORTS)


def toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and lists are valid TOML too


@dataclass
class DaemonProc:
    """A `dancodes run` started by a test; `stop` ends it by pid."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    config: Path
    log_path: Path
    ports: dict[str, int]

    @property
    def socket(self) -> Path:
        return self.data_dir / "run" / "dancodes.sock"

    @property
    def opencode_auth(self) -> httpx.BasicAuth:
        """opencode's server password (the daemon made it): for a test that talks to opencode directly."""
        password = (self.data_dir / "secrets" / "opencode-server-password").read_text().strip()
        return httpx.BasicAuth("opencode", password)

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://dancodes", timeout=timeout
        )

    def get(self, path: str) -> httpx.Response:
        with self.client() as c:
            return c.get(path)

    def post(self, path: str) -> httpx.Response:
        with self.client() as c:
            return c.post(path)

    def service(self, name: str) -> dict[str, Any]:
        services = self.get("/admin/services").json()["services"]
        found: dict[str, Any] = next(s for s in services if s["name"] == name)
        return found

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.proc.returncode}) while waiting for {what}:\n" + self.log()[-3000:]
                )
            try:
                last = check()
            except (httpx.HTTPError, OSError, KeyError, StopIteration):
                last = None
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last={last!r}\n" + self.log()[-3000:])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DANCODES_CTL, "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def write_config(path: Path, data_dir: Path, ports: dict[str, int], extra: str = "") -> None:
    path.write_text(
        f"data_dir = {toml_value(str(data_dir))}\n"
        f"[ports]\npublic = {ports['public']}\nopencode = {ports['opencode']}\napp = {ports['app']}\n" + extra
    )


#: The wall's secrets for every daemon a test starts (the wall refuses to start without them).
TEST_PASSWORD = "correct horse battery staple"
TEST_SECRET = secrets.token_urlsafe(32)


def daemon_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DANCODES_DATA_DIR", "DANCODES_PUBLIC_ORIGIN", "AUTH_SECRET_PREVIOUS", "GITHUB_TOKEN"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["AUTH_PASSWORD"] = TEST_PASSWORD
    env["AUTH_SECRET"] = TEST_SECRET
    return env


def reachable_by_agent(path: Path) -> None:
    """Let the agent's user walk down to `path`: pytest makes its temporary directories 0700, and a
    daemon running as root refuses a data_dir its agent cannot reach (production dirs are 0755)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


@pytest.fixture(scope="session", autouse=True)
def checkout_reachable_by_agent() -> None:
    """The daemon refuses to start when its agent's user cannot reach opencode's binary (the checkout's
    node_modules/.bin): a checkout under a private directory (/root) is opened for searching."""
    if os.geteuid() == 0:
        reachable_by_agent(Path(__file__).resolve().parent.parent / "node_modules" / ".bin")


def launch_daemon(
    root: Path,
    extra: str = "",
    *,
    wait_healthy: bool = True,
    argv_prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    ports: dict[str, int] | None = None,
    run_args: list[str] | None = None,
) -> DaemonProc:
    """Start `dancodes run` with its data, config and log under `root`; the caller stops it."""
    root.mkdir(parents=True, exist_ok=True)
    reachable_by_agent(root)
    data_dir = root / "data"
    ports = {"public": free_port(), "opencode": free_port(), "app": free_port(), **(ports or {})}
    config = root / "dancodes.toml"
    write_config(config, data_dir, ports, extra)
    log_path = root / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*(argv_prefix or []), DANCODES, "run", "--config", str(config), *(run_args or [])],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or daemon_env(root),
            cwd=root,
        )
    daemon = DaemonProc(proc=proc, data_dir=data_dir, config=config, log_path=log_path, ports=ports)
    try:
        daemon.wait_for(lambda: daemon.socket.exists() and daemon.get("/admin/health"), 30, "control socket")
        if wait_healthy:
            daemon.wait_for(lambda: daemon.get("/admin/health").status_code == 200, 60, "opencode healthy")
    except BaseException:
        daemon.stop()
        raise
    return daemon


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProc]]:
    """Start `dancodes run` with an extra config snippet; every daemon started is stopped after."""
    started: list[DaemonProc] = []

    def start(extra: str = "", **kwargs: Any) -> DaemonProc:
        daemon = launch_daemon(tmp_path / f"daemon{len(started)}", extra, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


ONLY_TEST_SERVICES = """
[services.opencode]
enabled = false
[services.caddy]
enabled = false
"""
