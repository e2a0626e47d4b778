"""The daemon as a real PID 1 (`unshare --pid --fork --mount-proc`) with real opencode and Caddy."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.conftest import TEST_PASSWORD, DaemonProc, defaults_if_free

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a PID namespace"
)

ORPHAN_MAKER = """
[services.orphaner]
# grandchildren whose parent exits at once: inside the namespace they come back to PID 1
argv = ["sh", "-c", "for i in 1 2 3 4 5; do (sleep 0.5 &); done; sleep 600"]
[services.orphaner.probe]
start_seconds = 0.1
"""


def namespace_tree(daemon: DaemonProc) -> list[psutil.Process]:
    """The daemon (as seen from outside the namespace) and everything below it."""
    outer = psutil.Process(daemon.proc.pid)  # `unshare` itself
    inner = outer.children()
    return inner + [p for proc in inner for p in proc.children(recursive=True)]


def outside_pid(daemon: DaemonProc, needle: str) -> int:
    for proc in namespace_tree(daemon):
        if needle in " ".join(proc.cmdline()):
            return proc.pid
    raise AssertionError(f"no process matching {needle!r}")


def test_pid1_runs_the_stack_restarts_opencode_reaps_and_empties_the_namespace(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    daemon = start_daemon(
        ORPHAN_MAKER,
        # --kill-child: if the test fails and stops unshare, PID 1 gets SIGTERM too instead of
        # living on under the host's init with the whole namespace
        argv_prefix=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"],
        ports=defaults_if_free(),
    )
    health = daemon.get("/admin/health").json()
    assert health["daemon"]["pid"] == 1
    assert health["daemon"]["mode"] == "pid1"
    public = f"http://127.0.0.1:{daemon.ports['public']}"
    daemon.wait_for(
        lambda: httpx.get(f"{public}/admin/health", timeout=2).status_code == 200, 30, "health through Caddy"
    )
    # without the cookie, health says only that it is up; the details are the owner's
    assert httpx.get(f"{public}/admin/health", timeout=5).json() == {"status": "ok"}
    # opencode itself answers through Caddy too, behind the wall
    assert httpx.get(f"{public}/global/health", timeout=5).status_code == 401
    with httpx.Client(base_url=public, headers={"Origin": public}, timeout=5) as browser:
        assert browser.post("/auth/login", data={"password": TEST_PASSWORD}).status_code == 303
        assert browser.get("/global/health").json()["healthy"] is True
        through_caddy = browser.get("/admin/health").json()
        assert through_caddy["services"]["opencode"]["state"] == "running"
        # Caddy serves before the daemon's probe of it (its admin socket) has run
        daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")

    # kill -9 opencode: the daemon restarts it and health comes back
    opencode = outside_pid(daemon, "opencode serve")
    os.kill(opencode, signal.SIGKILL)
    daemon.wait_for(
        lambda: (s := daemon.service("opencode"))["restarts"] == 1 and s["state"] == "running",
        60,
        "opencode restarted",
    )
    assert daemon.service("opencode")["last_exit"]["signal"] == "SIGKILL"
    daemon.wait_for(
        lambda: httpx.get(f"{public}/admin/health", timeout=2).status_code == 200,
        30,
        "healthy again through Caddy",
    )

    # the orphaned grandchildren were reaped by PID 1: no zombies, and each logged
    daemon.wait_for(lambda: daemon.get("/admin/processes").json()["reaped"] >= 5, 20, "orphans reaped")
    inner = psutil.Process(daemon.proc.pid).children()[0]
    assert [p.pid for p in inner.children() if p.status() == psutil.STATUS_ZOMBIE] == []

    # SIGTERM to PID 1 (from outside: inside, PID 1 only gets signals it handles) empties the namespace
    tree = namespace_tree(daemon)
    assert len(tree) >= 4  # daemon, opencode, caddy, orphaner (and helpers)
    inner.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    assert [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    stopping = [
        e["service"] for e in daemon.events() if e.get("event") == "state" and e["state"] == "stopping"
    ]
    assert stopping[-3:] == ["orphaner", "caddy", "opencode"]
