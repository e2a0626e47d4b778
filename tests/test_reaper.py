"""The one waiter: exit statuses reach their owners intact while orphans are reaped around them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import trio

from supervisor.reaper import ExitStatus, Reaper
from supervisor.spawn import spawn
from tests.conftest import ONLY_TEST_SERVICES, DaemonProc


async def test_status_7_is_reported_as_7_among_200_unowned_children() -> None:
    reaper = Reaper(interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        child = spawn(reaper, ["sh", "-c", "sleep 0.3; exit 7"], env=os.environ)
        # Children nobody registered: the reaper must collect them without touching child's status.
        strays = [os.posix_spawn("/bin/sh", ["sh", "-c", "exit 3"], os.environ) for _ in range(200)]
        status = await child.wait()
        with trio.fail_after(10):
            while reaper.orphans_reaped < len(strays):
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert status == ExitStatus(7)
    assert status.describe() == "exited with status 7"
    assert reaper.orphans_reaped == 200
    assert not reaper.children


async def test_signal_deaths_are_reported_as_signals() -> None:
    reaper = Reaper()
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        child = spawn(reaper, ["sleep", "30"], env=os.environ)
        assert child.signal_group(signal.SIGKILL)
        status = await child.wait()
        nursery.cancel_scope.cancel()
    assert status.code == -signal.SIGKILL
    assert status.signal == "SIGKILL"
    assert status.as_json() == {"code": None, "signal": "SIGKILL", "description": "killed by SIGKILL"}


ORPHAN_STORM = """
[services.seven]
argv = ["sh", "-c", "sleep 1.5; exit 7"]
[services.seven.probe]
start_seconds = 0.2
[services.seven.restart]
policy = "never"

[services.storm]
# 200 grandchildren whose parents exit at once: each comes back to the daemon as an orphan
argv = ["sh", "-c", "for i in $(seq 200); do (sleep 1 &) ; done; sleep 600"]
[services.storm.probe]
start_seconds = 0.2
"""


def test_daemon_reports_7_while_reaping_200_orphans(start_daemon: Callable[..., DaemonProc]) -> None:
    daemon = start_daemon(ONLY_TEST_SERVICES + ORPHAN_STORM, wait_healthy=False)
    seven = daemon.wait_for(
        lambda: (s := daemon.service("seven"))["state"] == "exited" and s, 30, "seven to exit"
    )
    assert seven["last_exit"]["code"] == 7
    assert seven["last_exit"]["description"] == "exited with status 7"
    assert seven["reason"] == "exited with status 7"
    daemon.wait_for(lambda: daemon.get("/admin/processes").json()["reaped"] >= 200, 30, "200 orphans reaped")
    reaped = [e for e in daemon.events() if e.get("event") == "orphan_reaped"]
    assert len(reaped) >= 200
    assert all(e["status"] == "exited with status 0" for e in reaped)
    # nothing is left as a zombie under the daemon
    zombies = [p for p in psutil.Process(daemon.proc.pid).children() if p.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def test_python_subprocess_wait_is_never_used_by_the_daemon() -> None:
    """The hard rule, checked on the source: only supervisor/reaper.py may wait for a child."""
    root = Path(__file__).resolve().parent.parent / "supervisor"
    forbidden = ("waitpid", "run_process", "subprocess.run", ".wait_procs", "SIG_IGN", "os.wait(", "waitid")
    offenders = []
    for path in root.rglob("*.py"):
        # ctl.py, and `dancodes init` and `dancodes service` (init/), run in processes of their own
        if path.name in ("reaper.py", "ctl.py") or path.parent.name == "init":
            continue
        text = path.read_text()
        offenders += [f"{path.name}: {word}" for word in forbidden if word in text]
    assert offenders == []


def test_reaper_module_runs_standalone_as_pid1_helper() -> None:
    """`become_reaper` makes this process a subreaper: a double-forked grandchild comes back to it."""
    code = (
        "import os, time\n"
        "from supervisor.reaper import become_reaper\n"
        "print(become_reaper(), flush=True)\n"
        "os.system('sh -c \"sleep 5 &\"')\n"
        "time.sleep(0.3)\n"
        "import psutil\n"
        "kids = [p.cmdline() for p in psutil.Process().children()]\n"
        "print(kids, flush=True)\n"
        "for p in psutil.Process().children(): p.kill()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    mode, kids = out.stdout.splitlines()
    assert mode == "subreaper"
    assert "['sleep', '5']" in kids
