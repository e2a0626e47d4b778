"""One owner per port: a listener sharing through SO_REUSEPORT counts as taken; a second daemon on a taken
public port refuses to start, and a port taken while Caddy is down fails Caddy's start, visibly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from supervisor.config import load_config
from supervisor.ports import busy_reason, daemon_ports, in_use
from tests.conftest import (
    DANCODES,
    TEST_PASSWORD,
    DaemonProc,
    daemon_env,
    free_port,
    reachable_by_agent,
    write_config,
)

#: Caddy alone: the public listener is what is at stake, opencode is not needed.
CADDY_ONLY = "[services.opencode]\nenabled = false\n"


def listener(port: int = 0, *, reuse_port: bool = False, family: int = socket.AF_INET6) -> socket.socket:
    """A TCP listener on every address (or 127.0.0.1 for AF_INET), made like Caddy's when `reuse_port`."""
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
    else:
        sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def listeners(port: int) -> set[int]:
    """The pids listening on TCP `port`."""
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }


def test_a_port_shared_through_so_reuseport_counts_as_taken() -> None:
    me = f"pid {os.getpid()} ({psutil.Process().name()})"
    for reuse_port, family in (
        (True, socket.AF_INET6),  # how Caddy binds: a second SO_REUSEPORT socket would share it
        (False, socket.AF_INET6),
        (True, socket.AF_INET),  # loopback only, IPv4 only
    ):
        with listener(reuse_port=reuse_port, family=family) as held:
            port = held.getsockname()[1]
            assert in_use(port), (reuse_port, family)
            assert busy_reason(port, "ports.public, for caddy") == (
                f"port {port} (ports.public, for caddy) is already in use by {me}"
            )
        assert not in_use(port), (reuse_port, family)  # closed: free again
    assert busy_reason(free_port(), "x") is None


def test_the_ports_a_daemon_must_own_are_named_for_what_they_are(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(
        config,
        tmp_path / "data",
        {"public": 18080, "opencode": 14096, "app": 14097},
        '[services.worker]\nargv = ["true"]\nowns_ports = [19000, "{ports.public}"]\n',
    )
    assert daemon_ports(load_config(config)) == [
        (14097, "ports.app, the daemon's own listener"),
        (14096, "ports.opencode, for opencode"),
        (18080, "ports.public, for caddy"),
        (19000, "services.worker.owns_ports"),
    ]


def test_with_acme_caddy_owns_443_and_80_instead_of_the_public_port(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(
        config,
        tmp_path / "data",
        {"public": 18080, "opencode": 14096, "app": 14097},
        '[tls]\nmode = "acme"\ndomain = "code.example.com"\n',
    )
    loaded = load_config(config)
    assert loaded.services["caddy"].owned_ports() == [443, 80]
    assert daemon_ports(loaded) == [
        (14097, "ports.app, the daemon's own listener"),
        (14096, "ports.opencode, for opencode"),
        (443, "tls.mode acme's HTTPS port, for caddy"),
        (80, "tls.mode acme's HTTP port, for caddy"),
    ]


def test_a_second_daemon_on_a_taken_public_port_refuses_and_the_first_keeps_every_request(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    first = start_daemon(CADDY_ONLY)
    caddy = first.wait_for(lambda: (s := first.service("caddy"))["state"] == "running" and s, 30, "caddy")
    public = first.ports["public"]
    url = f"http://127.0.0.1:{public}"
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=10) as browser:
        assert browser.post("/auth/login", data={"password": TEST_PASSWORD}).status_code == 303

        # the second: all services, its own data_dir, the first's public port, and another secret,
        # so a request that reached anything of it would fail
        second = tmp_path / "second"
        second.mkdir()
        reachable_by_agent(second)
        config = second / "dancodes.toml"
        write_config(config, second / "data", {"public": public, "opencode": free_port(), "app": free_port()})
        env = {**daemon_env(second), "AUTH_SECRET": "another-secret-" + "x" * 32}
        out = subprocess.run(
            [DANCODES, "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=second,
        )
        assert out.returncode == 1
        taken = f"port {public} (ports.public, for caddy) is already in use by pid {caddy['pid']} (caddy)"
        assert out.stderr.splitlines() == [f"dancodes: {taken}"]
        assert "Traceback" not in out.stdout
        assert not (second / "data" / "run" / "dancodes.sock").exists()  # nothing was started

        assert listeners(public) == {caddy["pid"]}
        answers = [browser.get("/admin/services").status_code for _ in range(40)]
        assert answers == [200] * 40  # every request reached the first daemon


def test_a_public_port_taken_while_caddy_is_down_fails_its_start_with_the_reason(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    daemon = start_daemon(CADDY_ONLY)
    daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy")
    public = daemon.ports["public"]
    assert daemon.ctl("stop", "caddy").returncode == 0
    reason = f"port {public} (ports.public, for caddy) is already in use by pid {os.getpid()}"

    with listener(public, reuse_port=True):  # what a second Caddy would hold
        started = daemon.ctl("start", "caddy")
        assert started.returncode == 3
        assert started.stdout.startswith(f"caddy: backoff: {reason} (")
        status = daemon.ctl("status")
        assert status.returncode == 3
        caddy_note = status.stdout.splitlines()[2]  # the line under caddy's row
        assert caddy_note.startswith("  "), status.stdout
        assert f"{reason} (" in caddy_note
        health = json.loads(daemon.ctl("--json", "status").stdout)["health"]
        assert f"{reason} (" in health["services"]["caddy"]["reason"]
        assert health["services"]["caddy"]["pid"] is None
        assert listeners(public) == {os.getpid()}  # no Caddy shares it

    started = daemon.ctl("start", "caddy")  # freed: the start skips the rest of the backoff
    assert started.returncode == 0, started.stdout + started.stderr
    assert listeners(public) == {daemon.service("caddy")["pid"]}
