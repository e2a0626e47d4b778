"""A daemon killed with SIGKILL leaves its services running; the next one on its data_dir ends them.

The decision (`select`) is tested on its own; then for real: a daemon with opencode, Caddy and orphans
is killed -9, what it left keeps serving, and a new daemon on the same data_dir ends all of it (and
spares a process whose pid is in the record with another start time) before it starts its own.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from pathlib import Path

import httpx
import psutil

from supervisor.predecessors import Record, RecordedService, Seen, Target, select, start_ticks
from tests.conftest import DaemonProc, launch_daemon
from tests.llm import opencode_xdg
from tests.test_ctl import ORPHAN_MAKER  # two `sleep 600` in sessions of their own, left as orphans

ME = 500


def seen(pid: int, *, ppid: int = 1, pgrp: int | None = None, start: int = 100, **kw: object) -> Seen:
    return Seen(
        pid=pid,
        ppid=ppid,
        pgrp=pid if pgrp is None else pgrp,
        start=start,
        zombie=bool(kw.get("zombie", False)),
        run=kw.get("run"),  # type: ignore[arg-type]
    )


def record(**services: tuple[int, int, str]) -> Record:
    return Record(
        boot_id="b",
        daemon_pid=400,
        services={n: RecordedService(pid=p, start=s, run=r) for n, (p, s, r) in services.items()},
        runs=["old1", *(r for _, _, r in services.values())],
    )


def test_select_ends_recorded_services_with_their_groups_and_their_runs_descendants() -> None:
    rec = record(opencode=(10, 100, "oc2"), caddy=(20, 101, "cd1"))
    procs = [
        seen(1, ppid=0),
        seen(ME, ppid=450, start=900),  # the new daemon
        seen(450, ppid=1, start=800),  # its parent (a shell)
        seen(10, start=100, run="oc2"),  # opencode, as recorded
        seen(11, ppid=10, pgrp=10, start=120),  # a helper in opencode's group, no run id
        seen(20, start=101, run="cd1"),  # Caddy, as recorded
        seen(30, start=300, run="oc2"),  # a tool of that opencode, in a session of its own
        seen(31, start=200, run="old1"),  # a tool of an earlier opencode run
        seen(40, start=300, run="someone-else"),
        seen(41, start=300),
    ]
    assert select(rec, procs, me=ME) == [
        Target(10, 100, group=True, why="opencode"),
        Target(11, 120, group=False, why="group of opencode"),
        Target(20, 101, group=True, why="caddy"),
        Target(30, 300, group=False, why="run oc2"),
        Target(31, 200, group=False, why="run old1"),
    ]


def test_select_never_picks_a_reused_pid_itself_its_ancestors_newer_processes_or_zombies() -> None:
    rec = record(opencode=(10, 100, "oc2"), caddy=(20, 101, "cd1"))
    procs = [
        seen(10, start=150, run=None),  # pid 10 reused: another start time
        seen(11, ppid=10, pgrp=10, start=160),  # in the group of that stranger
        seen(20, start=101, zombie=True),  # Caddy, dead already
        seen(ME, ppid=450, start=900, run="oc2"),  # the new daemon, started from an old tool's shell
        seen(450, ppid=460, start=800, run="oc2"),  # that shell
        seen(460, ppid=1, start=700, run="oc2"),  # and its parent
        seen(470, ppid=1, start=950, run="oc2"),  # started after the new daemon: not the old one's
    ]
    assert select(rec, procs, me=ME) == []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def listeners(port: int) -> set[int]:
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }


def test_a_daemon_killed_with_sigkill_is_replaced_and_what_it_left_is_ended(tmp_path: Path) -> None:
    root = tmp_path / "daemon"
    opencode_xdg(root / "data" / "opencode")  # no plugin install: opencode stops on SIGTERM
    left: list[psutil.Process] = []
    bystander: subprocess.Popen[bytes] | None = None
    second: DaemonProc | None = None
    first = launch_daemon(root, ORPHAN_MAKER)
    try:
        first.wait_for(lambda: first.service("caddy")["state"] == "running", 30, "caddy")
        old = {name: first.service(name)["pid"] for name in ("opencode", "caddy")}
        orphans = first.wait_for(
            lambda: len(o := first.get("/admin/processes").json()["orphans"]) >= 2 and o, 30, "orphans"
        )
        left = [psutil.Process(pid) for pid in [*old.values(), *(o["pid"] for o in orphans)]]
        public, opencode_port = first.ports["public"], first.ports["opencode"]

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        # what it started lives on, holding the ports
        assert all(alive(p.pid) for p in left)
        assert listeners(public) == {old["caddy"]}
        answer = httpx.get(f"http://127.0.0.1:{opencode_port}/global/health", timeout=10)
        assert answer.status_code in (200, 401)  # opencode answers (401 once it wants its password)

        # a process whose pid the record names with another start time (a reused pid) must survive
        bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
        record_path = root / "data" / "run" / "services.json"
        data = json.loads(record_path.read_text())
        ticks = start_ticks(bystander.pid)
        assert ticks is not None
        data["services"]["reused"] = {"pid": bystander.pid, "start": ticks - 1, "run": "not-a-run"}
        record_path.write_text(json.dumps(data))

        second = launch_daemon(root, ports=first.ports)  # same data_dir, same ports; waits for health
        killed = [e for e in second.events() if e.get("event") == "predecessor_killed"]
        assert len(killed) == 1
        assert set(killed[0]["pids"]) == {p.pid for p in left}
        assert killed[0]["daemon_pid"] == first.proc.pid
        for proc in left:
            assert not alive(proc.pid)
        assert bystander.poll() is None  # the reused pid was spared

        assert second.get("/admin/health").status_code == 200
        second.wait_for(lambda: second.service("caddy")["state"] == "running", 30, "caddy running")
        services = second.get("/admin/health").json()["services"]
        assert services["opencode"]["healthy"] is True
        assert services["opencode"]["restarts"] == 0  # no crash loop on a port held by the old one
        assert services["opencode"]["pid"] not in old.values()
        assert listeners(public) == {services["caddy"]["pid"]}
        assert listeners(opencode_port) == {services["opencode"]["pid"]}
        assert httpx.get(f"http://127.0.0.1:{public}/auth/login", timeout=10).status_code == 200
        status = second.ctl("status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.splitlines()[-1] == "no orphans"
    finally:
        if second is not None:
            second.stop()
        first.stop()
        for proc in left:  # whatever a failed test left, by pid (psutil checks it is the same process)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if bystander is not None:
            bystander.kill()
            bystander.wait()
