"""Bad input at start: each a clear one-line error or a visible reason, never a traceback or a hang."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from supervisor.config import load_config
from supervisor.errors import ConfigError
from tests.conftest import (
    DANCODES,
    ONLY_TEST_SERVICES,
    DaemonProc,
    daemon_env,
    free_port,
    reachable_by_agent,
    write_config,
)


def run_daemon(tmp_path: Path, config_text: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bad.toml"
    config.write_text(config_text)
    reachable_by_agent(tmp_path)
    return subprocess.run(
        [DANCODES, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=daemon_env(tmp_path),
        cwd=tmp_path,
    )


def assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[ports]\npublic = 'eighty'\n", ["ports.public", "expected 'int', got 'str'"]),
        ("[services.opencode.probe]\ntimeout = -1\n", ["services.opencode.probe.timeout", "> 0"]),
        ("[daemon]\nstop_timout = 3\n", ["daemon.stop_timout", "unknown key"]),
        (
            "[services.opencode.restart]\npolicy = 'sometimes'\n",
            ["services.opencode.restart.policy", "sometimes"],
        ),
        ("[services.caddy]\nafter = ['nginx']\n", ["services.caddy.after", "no service named 'nginx'"]),
        ("[services.x]\nargv = []\n", ["services.x.argv", "length"]),
        ("[services.x]\nargv = ['true']\nstop_signal = 'SIGFOO'\n", ["services.x.stop_signal", "SIGFOO"]),
        (
            "[services.x]\nargv = ['true']\nafter = ['y']\n[services.y]\nargv = ['true']\nafter = ['x']\n",
            ["dependency cycle"],
        ),
        ("[services.x]\nargv = ['{nope}']\n", ["services.x.argv", "bad placeholder"]),
        ("[services.Bad_Name]\nargv = ['true']\n", ["services", "Bad_Name"]),
        (
            "[services.opencode.restart]\nslow_retry = 300\n",
            ["services.opencode.restart.slow_retry", "300s is longer than backoff_max (30s)"],
        ),
        ("[ports]\npublic = 4100\napp = 4100\n", ["ports.app", "4100 is also ports.public"]),
        ("[services.x]\nargv = ['true']\nowns_ports = ['{ports.nope}']\n", ["services.x.owns_ports.0"]),
        ("[services.x]\nargv = ['true']\nowns_ports = ['80a']\n", ["services.x.owns_ports.0", "'80a'"]),
        ("[services.x]\nargv = ['true']\nowns_ports = [70000]\n", ["services.x.owns_ports.0", "70000"]),
        ("this is = not toml ]\n", ["not valid TOML"]),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, needles: list[str]) -> None:
    out = run_daemon(tmp_path, f"data_dir = '{tmp_path / 'data'}'\n" + text)
    assert out.returncode == 2
    assert_one_line_error(out, "bad.toml", *needles)
    assert not (tmp_path / "data").exists()  # nothing half-made


def test_missing_config_file(tmp_path: Path) -> None:
    out = subprocess.run(
        [DANCODES, "run", "--config", str(tmp_path / "nope.toml")], capture_output=True, text=True, timeout=30
    )
    assert_one_line_error(out, "nope.toml", "does not exist")


def test_config_error_carries_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[orphans]\ncheck_interval = 'often'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "orphans.check_interval"
    assert info.value.path == str(path)


def test_unusable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = run_daemon(tmp_path, f"data_dir = '{blocker / 'data'}'\n")
    assert_one_line_error(out, "data_dir", "not usable", "Not a directory")


def test_a_second_daemon_on_the_same_data_dir_is_refused(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    first = start_daemon(ONLY_TEST_SERVICES, wait_healthy=False)
    text = (
        f"data_dir = '{first.data_dir}'\n[ports]\napp = {free_port()}\n"
        f"public = {free_port()}\nopencode = {free_port()}\n" + ONLY_TEST_SERVICES
    )
    out = run_daemon(tmp_path, text)
    assert out.returncode == 1
    assert_one_line_error(
        out, f"another dancodes daemon (pid {first.proc.pid}) is already running on data_dir"
    )
    assert first.get("/admin/health").status_code == 200  # the first one is untouched, socket included


def listening(*, reuse_port: bool = False) -> socket.socket:
    """A TCP listener on a free port of every address, as Caddy makes one (SO_REUSEPORT) or not."""
    sock = socket.socket(socket.AF_INET6)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("::", 0))
    sock.listen()
    return sock


def test_app_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = (
            f"data_dir = '{tmp_path / 'data'}'\n[ports]\napp = {port}\n"
            f"public = {free_port()}\nopencode = {free_port()}\n" + ONLY_TEST_SERVICES
        )
        out = run_daemon(tmp_path, text)
    assert out.returncode == 1
    assert_one_line_error(
        out, f"port {port} (ports.app, the daemon's own listener) is already in use by pid {os.getpid()}"
    )


def test_a_taken_opencode_port_refuses_the_start_naming_the_port(tmp_path: Path) -> None:
    # SO_REUSEPORT, as Caddy binds: a listener that would share the port rather than fail
    with listening(reuse_port=True) as busy:
        port = busy.getsockname()[1]
        text = (
            f"data_dir = '{tmp_path / 'data'}'\n[ports]\nopencode = {port}\n"
            f"public = {free_port()}\napp = {free_port()}\n"
        )
        out = run_daemon(tmp_path, text)
    assert out.returncode == 1
    assert_one_line_error(out, f"port {port} (ports.opencode, for opencode) is already in use by pid")
    # refused before anything started: no socket, no service record
    assert not (tmp_path / "data" / "run" / "dancodes.sock").exists()
    assert not (tmp_path / "data" / "run" / "services.json").exists()


def test_missing_binary_shows_as_backoff_reason(start_daemon: Callable[..., DaemonProc]) -> None:
    daemon = start_daemon(
        ONLY_TEST_SERVICES + "[services.ghost]\nargv = ['/nonexistent/ghostd']\n"
        "[services.ghost.restart]\nbackoff_initial = 30.0\n",
        wait_healthy=False,
    )
    svc = daemon.wait_for(lambda: (s := daemon.service("ghost"))["state"] == "backoff" and s, 20, "backoff")
    assert svc["reason"] == "executable '/nonexistent/ghostd' not found"
    out = daemon.ctl("status")
    assert "executable '/nonexistent/ghostd' not found" in out.stdout


def test_write_config_helper_round_trips(tmp_path: Path) -> None:
    ports = {"public": 1, "opencode": 2, "app": 3}
    write_config(tmp_path / "c.toml", tmp_path / "d", ports)
    loaded = load_config(tmp_path / "c.toml")
    assert loaded.config.ports.app == 3
    assert loaded.paths.data_dir == tmp_path / "d"
