"""`dancodes-ctl` run as a real command against a real daemon: tables, JSON, logs, kills, exit codes."""

from __future__ import annotations

import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from supervisor.config import load_config
from supervisor.ctl import human_bytes, human_duration, last_exit
from tests.conftest import DANCODES_CTL, ONLY_TEST_SERVICES, TEST_PASSWORD, DaemonProc, launch_daemon

SLEEPER = (
    ONLY_TEST_SERVICES
    + """
[services.sleeper]
argv = ["python3", "-c", "import time,sys; print('hello from sleeper', flush=True); \
print('err line', file=sys.stderr, flush=True); time.sleep(600)"]
[services.sleeper.probe]
start_seconds = 0.2
"""
)

# Two `sleep 600` in sessions of their own (the service's process group is killed when it ends):
# their parent exits at once, so they come back to the daemon, a subreaper, as orphans.
ORPHAN_MAKER = """
[services.maker]
argv = ["python3", "-c", "import subprocess as s; [s.Popen(['sleep', '600'], start_new_session=True, \
stdout=s.DEVNULL, stderr=s.DEVNULL) for _ in range(2)]"]
[services.maker.restart]
policy = "never"
[services.maker.probe]
start_seconds = 0.1
"""

BOTH_LINES = [("stderr", "err line"), ("stdout", "hello from sleeper")]
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (stdout|stderr) (.*)$")
Start = Callable[..., DaemonProc]


def running(daemon: DaemonProc, name: str = "sleeper") -> dict[str, Any]:
    found: dict[str, Any] = daemon.wait_for(
        lambda: (s := daemon.service(name))["state"] == "running" and s, 30, f"{name} running"
    )
    return found


def orphan_pids(daemon: DaemonProc, n: int) -> list[int]:
    orphans = daemon.wait_for(
        lambda: len(o := daemon.get("/admin/processes").json()["orphans"]) >= n and o, 30, f"{n} orphans"
    )
    return [o["pid"] for o in orphans]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # killed, about to be reaped
    except psutil.NoSuchProcess:
        return True


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The stderr of a failed command: exactly one `dancodes-ctl: …` line, no traceback."""
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dancodes-ctl: ")
    return lines[0]


@pytest.fixture
def sleeper(start_daemon: Start) -> DaemonProc:
    daemon = start_daemon(SLEEPER, wait_healthy=False)
    running(daemon)
    return daemon


# -- status ----------------------------------------------------------------------------------------


def test_status_prints_a_table_and_exits_0_when_all_run(sleeper: DaemonProc) -> None:
    pid = sleeper.service("sleeper")["pid"]
    result = sleeper.ctl("status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "LAST-EXIT", "HEALTH"]
    row = lines[1].split()
    assert row[:3] == ["sleeper", "running", str(pid)]
    assert re.fullmatch(r"\d+s", row[3])
    assert row[4:] == ["0", "-", "healthy"]
    daemon_line = next(line for line in lines if line.startswith("daemon pid"))
    assert f"daemon pid {sleeper.proc.pid}," in daemon_line
    assert "health ok" in daemon_line
    assert re.fullmatch(r"disk \S+ used of \S+, \S+ free", lines[lines.index(daemon_line) + 1])
    assert lines[-1] == "no orphans"


def test_status_json_is_the_health_body_and_the_orphans(sleeper: DaemonProc) -> None:
    result = sleeper.ctl("--json", "status")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"health", "orphans"}
    assert body["health"]["daemon"]["pid"] == sleeper.proc.pid
    assert body["health"]["services"]["sleeper"]["state"] == "running"
    assert body["orphans"] == []
    # --json also works after the command
    assert json.loads(sleeper.ctl("status", "--json").stdout)["health"]["status"] == "ok"


def test_stop_makes_status_exit_3_and_start_brings_it_back(sleeper: DaemonProc) -> None:
    stopped = sleeper.ctl("stop", "sleeper")
    assert (stopped.returncode, stopped.stdout) == (0, "sleeper: stopped\n")

    status = sleeper.ctl("status")
    assert status.returncode == 3
    row = status.stdout.splitlines()[1].split()
    assert row[:4] == ["sleeper", "stopped", "-", "-"]
    assert row[5:] == ["SIGTERM", "-"]  # the stop sequence's signal ended it
    assert (
        json.loads(sleeper.ctl("--json", "status").stdout)["health"]["services"]["sleeper"]["state"]
        == "stopped"
    )

    started = sleeper.ctl("start", "sleeper")
    assert started.returncode == 0, started.stderr
    new_pid = sleeper.service("sleeper")["pid"]
    assert started.stdout == f"sleeper: running (pid {new_pid})\n"
    assert sleeper.ctl("status").returncode == 0


def test_a_start_that_fails_answers_with_the_reason_and_exit_3(start_daemon: Start) -> None:
    daemon = start_daemon(
        ONLY_TEST_SERVICES + "[services.ghost]\nargv = ['/nonexistent/ghostd']\nenabled = true\n"
        "[services.ghost.restart]\npolicy = 'never'\n",
        wait_healthy=False,
    )
    daemon.wait_for(lambda: daemon.service("ghost")["state"] == "exited", 20, "ghost to give up")
    result = daemon.ctl("start", "ghost")
    assert result.returncode == 3
    assert result.stdout == "ghost: exited: executable '/nonexistent/ghostd' not found\n"


def test_restart_runs_a_new_process(sleeper: DaemonProc) -> None:
    old = sleeper.service("sleeper")["pid"]
    result = sleeper.ctl("--json", "restart", "sleeper")
    assert result.returncode == 0, result.stderr
    svc = json.loads(result.stdout)["service"]
    assert svc["state"] == "running"
    assert svc["pid"] not in (None, old)
    assert svc["restarts"] == 1
    assert sleeper.service("sleeper")["pid"] == svc["pid"]
    assert gone(old)


def test_unknown_service_is_the_daemons_404_and_exit_1(sleeper: DaemonProc) -> None:
    for args in (["restart", "nope"], ["stop", "nope"], ["logs", "nope"], ["logs", "-f", "nope"]):
        result = sleeper.ctl(*args)
        assert result.returncode == 1, args
        assert "nope" in one_error_line(result)


# -- logs ------------------------------------------------------------------------------------------


def test_logs_shows_recent_lines_with_time_and_stream(sleeper: DaemonProc) -> None:
    sleeper.wait_for(
        lambda: len(sleeper.get("/admin/services/sleeper/logs").json()["lines"]) >= 2, 10, "both lines logged"
    )
    result = sleeper.ctl("logs", "sleeper", "-n", "5")
    assert result.returncode == 0, result.stderr
    parsed = [LOG_LINE.match(line) for line in result.stdout.splitlines()]
    assert all(parsed), result.stdout
    # stdout and stderr are separate pipes: which line the daemon read first is up to chance
    assert sorted((m.group(1), m.group(2)) for m in parsed if m) == BOTH_LINES

    last = sleeper.ctl("logs", "sleeper", "-n", "1").stdout.splitlines()
    assert len(last) == 1
    assert last[0][9:] in ("stdout hello from sleeper", "stderr err line")

    as_json = sleeper.ctl("logs", "sleeper", "-n", "5", "--json")
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert sorted((e["stream"], e["line"]) for e in entries) == BOTH_LINES
    assert all(abs(e["t"] - time.time()) < 120 for e in entries)


def read_until(
    proc: subprocess.Popen[bytes], needle: bytes, count: int, seen: bytes = b"", timeout: float = 20.0
) -> bytes:
    """`seen` and what `proc` printed next, once `needle` is in it `count` times; fails after `timeout`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while seen.count(needle) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"no {count}x {needle!r} in {seen!r}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"output ended before {count}x {needle!r}: {seen!r}"
            seen += chunk
    return seen


def test_logs_follow_streams_new_lines_until_ctrl_c(sleeper: DaemonProc) -> None:
    proc = subprocess.Popen(
        [DANCODES_CTL, "--socket", str(sleeper.socket), "logs", "sleeper", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        backlog = read_until(proc, b"hello from sleeper", 1)
        sleeper.post("/admin/services/sleeper/restart")
        printed = read_until(proc, b"hello from sleeper", 2, backlog)  # the new run's output, live
        assert all(LOG_LINE.match(line) for line in printed.decode().splitlines())
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


# -- kill ------------------------------------------------------------------------------------------


def test_status_lists_orphans_and_kill_ends_one(start_daemon: Start) -> None:
    daemon = start_daemon(SLEEPER + ORPHAN_MAKER, wait_healthy=False)
    first, second = orphan_pids(daemon, 2)

    status = daemon.ctl("status")
    assert status.returncode == 3  # maker ran once and exited, as its policy says
    lines = status.stdout.splitlines()
    assert "  exited with status 0" in lines  # maker's reason, below its row
    table = lines[lines.index("ORPHANS") + 1 :]
    assert table[0].split() == ["PID", "AGE", "CPU", "RSS", "SERVICE", "COMMAND"]
    assert {tuple(row.split()[i] for i in (0, 4, 5, 6)) for row in table[1:]} == {
        (str(first), "maker", "sleep", "600"),
        (str(second), "maker", "sleep", "600"),
    }
    orphans = json.loads(daemon.ctl("--json", "status").stdout)["orphans"]
    assert [(o["pid"], o["cmdline"], o["service"]) for o in orphans] == [
        (first, ["sleep", "600"], "maker"),
        (second, ["sleep", "600"], "maker"),
    ]

    killed = daemon.ctl("kill", str(first))
    assert (killed.returncode, killed.stdout) == (0, f"killed {first}\n")
    daemon.wait_for(lambda: gone(first), 10, f"orphan {first} gone")
    assert not gone(second)
    daemon.wait_for(
        lambda: [o["pid"] for o in daemon.get("/admin/processes").json()["orphans"]] == [second],
        10,
        "one orphan left",
    )


def test_kill_orphans_ends_them_all(start_daemon: Start) -> None:
    daemon = start_daemon(SLEEPER + ORPHAN_MAKER, wait_healthy=False)
    pids = orphan_pids(daemon, 2)
    result = daemon.ctl("kill", "--orphans")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("killed ")
    assert sorted(int(p) for p in result.stdout.split()[1:]) == sorted(pids)
    daemon.wait_for(lambda: all(gone(pid) for pid in pids), 10, "orphans gone")

    again = daemon.ctl("kill", "--orphans")
    assert (again.returncode, again.stdout) == (0, "no orphans to kill\n")
    assert json.loads(daemon.ctl("--json", "kill", "--orphans").stdout) == {"killed": []}
    assert daemon.service("sleeper")["state"] == "running"  # services are not orphans


def test_kill_refuses_the_daemon_its_services_and_strangers(sleeper: DaemonProc) -> None:
    service_pid = sleeper.service("sleeper")["pid"]
    for pid, why in (
        (sleeper.proc.pid, "the daemon itself"),
        (service_pid, "managed service 'sleeper'"),
        (1, "refusing to kill pid 1"),
    ):
        result = sleeper.ctl("kill", str(pid))
        assert result.returncode == 1, (pid, result.stdout)
        assert why in one_error_line(result)
    assert psutil.pid_exists(service_pid)
    assert sleeper.service("sleeper")["pid"] == service_pid


def test_kill_of_a_dead_pid_says_so(sleeper: DaemonProc) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    result = sleeper.ctl("kill", str(dead.pid))
    assert result.returncode == 1
    assert one_error_line(result) == f"dancodes-ctl: no live process with pid {dead.pid}"


# -- reaching the daemon -------------------------------------------------------------------------


def run_ctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DANCODES_CTL, *args], capture_output=True, text=True, timeout=30, env=env)


def test_no_daemon_is_exit_4_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "run" / "dancodes.sock"
    result = run_ctl("--socket", str(missing), "status")
    assert result.returncode == 4
    assert one_error_line(result) == f"dancodes-ctl: cannot reach the daemon at {missing}: is it running?"

    # a socket file left behind by a dead daemon: connection refused, same answer
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
        for args in (["kill", "--orphans"], ["logs", "-f", "sleeper"], ["restart", "x"]):
            result = run_ctl("--socket", str(stale), *args)
            assert result.returncode == 4, args
            assert "is it running?" in one_error_line(result)


def test_socket_from_env_data_dir_and_config(sleeper: DaemonProc) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DANCODES_SOCKET", "DANCODES_DATA_DIR")}
    for extra, args in (
        ({"DANCODES_SOCKET": str(sleeper.socket)}, []),
        ({"DANCODES_DATA_DIR": str(sleeper.data_dir)}, []),
        ({}, ["--config", str(sleeper.config)]),
    ):
        result = run_ctl(*args, "--json", "status", env=env | extra)
        assert result.returncode == 0, (extra, args, result.stderr)
        assert json.loads(result.stdout)["health"]["daemon"]["pid"] == sleeper.proc.pid


def test_usage_errors_are_exit_2_and_help_documents_exit_codes(tmp_path: Path) -> None:
    for args in (["kill"], ["kill", "abc"], ["kill", "--orphans", "5"], ["logs"], ["frobnicate"], []):
        result = run_ctl("--socket", str(tmp_path / "x.sock"), *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[ports]\npublic = 'eighty'\n")
    result = run_ctl("--config", str(bad), "status")
    assert result.returncode == 2
    assert "ports.public" in one_error_line(result)

    helped = run_ctl("--help")
    assert helped.returncode == 0
    epilog = helped.stdout[helped.stdout.index("exit status:") :]
    for code in "01234":
        assert re.search(rf"^\s+{code}\s+\S", epilog, re.MULTILINE), code


def test_humanized_numbers() -> None:
    assert [human_duration(s) for s in (None, 3, 312, 7380, 4 * 86400 + 2 * 3600 + 5)] == [
        "-",
        "3s",
        "5m12s",
        "2h03m",
        "4d02h",
    ]
    assert [human_bytes(n) for n in (512, 1536, 5 * 2**20, 300 * 2**30)] == ["512B", "1.5K", "5.0M", "300G"]
    assert [
        last_exit(e) for e in (None, {"code": 7, "signal": None}, {"code": None, "signal": "SIGKILL"})
    ] == ["-", "status 7", "SIGKILL"]


# -- config ---------------------------------------------------------------------------------------


def test_config_set_is_validated_written_applied_and_kept(sleeper: DaemonProc) -> None:
    settings = sleeper.data_dir / "settings.toml"
    assert sleeper.ctl("config", "get", "orphans.kill_after_minutes").stdout == "0.0\n"

    bad = sleeper.ctl("config", "set", "orphans.kill_after_minutes", "soon")
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith("orphans.kill_after_minutes: expected 'float', got 'str'")
    assert not settings.exists()  # a bad value never reaches the disk
    typo = sleeper.ctl("config", "set", "daemon.stop_timout", "3")
    assert (typo.returncode, typo.stderr.strip().endswith("daemon.stop_timout: unknown key")) == (1, True)
    refused = sleeper.ctl("config", "set", "data_dir", "/elsewhere")
    assert "cannot be set inside the data_dir" in refused.stderr
    missing = sleeper.ctl("config", "get", "nope.nothing")
    assert (missing.returncode, missing.stderr) == (1, "dancodes-ctl: config: nope.nothing: no such key\n")

    done = sleeper.ctl("config", "set", "orphans.kill_after_minutes", "30")
    assert (done.returncode, done.stdout) == (0, "orphans.kill_after_minutes = 30.0 (applied)\n")
    assert "kill_after_minutes = 30" in settings.read_text()
    assert load_config(sleeper.config).config.orphans.kill_after_minutes == 30.0  # a restart keeps it
    whole = sleeper.ctl("config", "get")
    assert "kill_after_minutes = 30.0" in whole.stdout
    assert str(settings) in whole.stdout.splitlines()[0]  # the layers are named
    assert (
        json.loads(sleeper.ctl("--json", "config", "get").stdout)["config"]["orphans"]["kill_after_minutes"]
        == 30
    )

    ports = sleeper.ctl("config", "set", "ports.public", "18081")
    assert ports.stdout == "ports.public = 18081 (restart the daemon to apply it)\n"

    assert sleeper.ctl("config", "unset", "orphans.kill_after_minutes").returncode == 0
    assert sleeper.ctl("config", "unset", "ports.public").returncode == 0
    assert sleeper.ctl("config", "get", "orphans.kill_after_minutes").stdout == "0.0\n"
    assert "orphans" not in settings.read_text()


def test_config_set_on_a_service_restarts_it_with_the_new_setting(sleeper: DaemonProc) -> None:
    old = running(sleeper)["pid"]
    result = sleeper.ctl("config", "set", "services.sleeper.env.GREETING", "hello")
    assert result.returncode == 0, result.stderr
    new = sleeper.wait_for(lambda: (s := running(sleeper))["pid"] != old and s, 30, "sleeper restarted")
    assert psutil.Process(new["pid"]).environ()["GREETING"] == "hello"


def fill(path: Path) -> None:
    """Write zeros to `path` until the volume has no byte left (raises the OSError that says so)."""
    with path.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_config_set_on_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    root = tmp_path / "full"
    data = root / "data"
    data.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "dancodes-full-test", str(data)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a 1 MB tmpfs as the data_dir (needs root): {mount.stderr.strip()}")
    daemon: DaemonProc | None = None
    try:
        settings = data / "settings.toml"
        stale = data / "settings.toml.tmp-99999"  # what a daemon killed mid-write would leave
        stale.write_text("half")
        daemon = launch_daemon(root, SLEEPER, wait_healthy=False)
        running(daemon)
        assert not stale.exists()
        assert daemon.ctl("config", "set", "orphans.kill_after_minutes", "30").returncode == 0
        before = settings.read_bytes()

        filler = data / "filler"
        with pytest.raises(OSError) as full:
            fill(filler)
        assert full.value.errno == errno.ENOSPC

        result = daemon.ctl("config", "set", "orphans.kill_after_minutes", "45")
        assert result.returncode == 1  # the daemon failed the request
        assert one_error_line(result) == f"dancodes-ctl: cannot save {settings}: No space left on device"
        with daemon.client() as client:
            answer = client.put("/admin/config/orphans.kill_after_minutes", json={"value": "45"})
        assert answer.status_code == 507
        assert answer.json() == {"error": f"cannot save {settings}: No space left on device"}
        assert sorted(p.name for p in data.iterdir() if p.name.startswith("settings")) == ["settings.toml"]
        assert settings.read_bytes() == before  # the old settings, whole
        assert daemon.ctl("config", "get", "orphans.kill_after_minutes").stdout == "30.0\n"  # not applied

        filler.unlink()  # space again: the same command works
        done = daemon.ctl("config", "set", "orphans.kill_after_minutes", "45")
        assert (done.returncode, done.stdout) == (0, "orphans.kill_after_minutes = 45.0 (applied)\n")
    finally:
        if daemon is not None:
            daemon.stop()
        if subprocess.run(["umount", str(data)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(data)], check=True)


def test_a_service_that_cannot_start_shows_why_in_status_and_health(start_daemon: Start) -> None:
    extra = ONLY_TEST_SERVICES + "".join(
        f"[services.{name}]\nargv = {json.dumps(argv)}\n{cwd}"
        f"[services.{name}.restart]\nbackoff_initial = 60.0\n"
        for name, argv, cwd in (
            ("noexe", ["/nonexistent/dancodes-exe"], ""),
            ("nocwd", ["true"], 'cwd = "/nonexistent/dancodes-cwd"\n'),
            ("filecwd", ["true"], 'cwd = "/etc/hostname"\n'),
        )
    )
    daemon = start_daemon(extra, wait_healthy=False)
    reasons = {
        "noexe": "executable '/nonexistent/dancodes-exe' not found",
        "nocwd": "working directory '/nonexistent/dancodes-cwd' not found",
        "filecwd": "working directory '/etc/hostname': Not a directory",
    }
    daemon.wait_for(
        lambda: all(daemon.service(name)["state"] == "backoff" for name in reasons), 20, "all in backoff"
    )
    status = daemon.ctl("status")
    assert status.returncode == 3
    lines = status.stdout.splitlines()
    for name, reason in reasons.items():
        row = next(i for i, line in enumerate(lines) if line.split()[:2] == [name, "backoff"])
        assert lines[row + 1] == f"  {reason}"
    health = daemon.get("/admin/health").json()  # the detailed body (control socket)
    for name, reason in reasons.items():
        assert health["services"][name]["reason"] == reason
        assert health["services"][name]["pid"] is None


# -- logout ------------------------------------------------------------------------------------------


def test_logout_all_ends_every_session(sleeper: DaemonProc) -> None:
    """`dancodes-ctl logout --all`: every cookie of every device gets 401 from then on."""
    app = f"http://127.0.0.1:{sleeper.ports['app']}"

    def signed_in_client() -> httpx.Client:
        client = httpx.Client(base_url=app, headers={"Sec-Fetch-Site": "same-origin"}, timeout=10)
        assert client.post("/auth/login", data={"password": TEST_PASSWORD}).status_code == 303
        return client

    phone, laptop = signed_in_client(), signed_in_client()
    try:
        assert phone.get("/admin/services").status_code == 200
        assert laptop.get("/admin/services").status_code == 200
        listed = json.loads(sleeper.ctl("--json", "logout", "--all").stdout)
        assert listed == {"ended": 2}
        assert phone.get("/admin/services").status_code == 401
        assert laptop.get("/admin/services").status_code == 401
        nobody = sleeper.ctl("logout", "--all")
        assert nobody.returncode == 0
        assert nobody.stdout == "ended 0 session(s): every browser must log in again\n"
        usage = sleeper.ctl("logout")  # ending one session is DELETE /admin/sessions/<id>, not this
        assert usage.returncode == 2
        assert "--all" in usage.stderr
    finally:
        phone.close()
        laptop.close()


# -- -q and -v ------------------------------------------------------------------------------------


def test_quiet_prints_nothing_on_success_and_one_line_on_an_error(start_daemon: Start) -> None:
    daemon = start_daemon(SLEEPER, wait_healthy=False)
    old_pid = running(daemon)["pid"]
    silent = [
        ("-q", "status"),
        ("status", "-q"),  # after the command too
        ("-q", "restart", "sleeper"),
        ("-q", "stop", "sleeper"),
        ("-q", "start", "sleeper"),
        ("-q", "config", "set", "orphans.kill_after_minutes", "30"),
        ("-q", "config", "unset", "orphans.kill_after_minutes"),
        ("-q", "kill", "--orphans"),  # none: "no orphans to kill" without -q
        ("-q", "logout", "--all"),
    ]
    for args in silent:
        result = daemon.ctl(*args)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), args
    # each of them did its work all the same
    assert running(daemon)["pid"] != old_pid
    assert daemon.ctl("config", "get", "orphans.kill_after_minutes").stdout == "0.0\n"
    # the answer to a question still comes: it is what was asked for
    assert daemon.ctl("-q", "config", "get", "orphans.kill_after_minutes").stdout == "0.0\n"
    assert "hello from sleeper" in daemon.ctl("-q", "logs", "sleeper").stdout
    assert json.loads(daemon.ctl("-q", "--json", "status").stdout)["health"]["services"]
    # -q still tells what went wrong, in one line, and the exit status still says it
    stopped = daemon.ctl("stop", "sleeper")
    assert stopped.returncode == 0
    down = daemon.ctl("-q", "status")
    assert (down.returncode, down.stdout, down.stderr) == (3, "", "")
    error = daemon.ctl("-q", "stop", "nosuch")
    assert error.returncode == 1
    assert "nosuch" in one_error_line(error)
    assert daemon.ctl("-q", "-v", "status").returncode == 2  # one or the other


def test_verbose_shows_each_request_on_stderr(sleeper: DaemonProc) -> None:
    result = sleeper.ctl("-v", "status")
    assert result.returncode == 0
    assert "sleeper" in result.stdout
    assert result.stderr.splitlines() == [
        f"dancodes-ctl: control socket {sleeper.socket}",
        "dancodes-ctl: GET /admin/health -> 200",
        "dancodes-ctl: GET /admin/processes -> 200",
    ]
    plain = sleeper.ctl("status")
    assert (plain.stdout.splitlines()[0], plain.stderr) == (result.stdout.splitlines()[0], "")
