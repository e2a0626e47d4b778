"""The daemon end to end with small test services: probes, stop, reload, output and secrets."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from tests.conftest import ONLY_TEST_SERVICES, DaemonProc, daemon_env, free_port, launch_daemon
from tests.llm import opencode_xdg

WEB = """
[services.web]
argv = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
[services.web.probe]
url = "http://127.0.0.1:{port}/"
timeout = 0.3
interval = 0.3
failures = 2
start_timeout = 20.0
[services.web.restart]
stable_after = 0.0
"""


def test_stopped_service_is_caught_by_the_probe_timeout_and_restarted(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    port = free_port()
    daemon = start_daemon(ONLY_TEST_SERVICES + WEB.replace("{port}", str(port)), wait_healthy=False)
    first = daemon.wait_for(lambda: (s := daemon.service("web"))["state"] == "running" and s, 30, "web up")
    os.kill(first["pid"], signal.SIGSTOP)  # alive, accepts connections (the kernel does), answers nothing
    second = daemon.wait_for(
        lambda: (s := daemon.service("web"))["state"] == "running" and s["pid"] != first["pid"] and s,
        30,
        "a new web process",
    )
    assert second["restarts"] == 1
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == "zombie"
    states = [
        (e["state"], e.get("reason") or "")
        for e in daemon.events()
        if e.get("event") == "state" and e.get("service") == "web"
    ]
    unhealthy = [r for s, r in states if s == "unhealthy"]
    assert unhealthy
    assert "timed out after 0.3s" in unhealthy[0]
    assert any(s == "stopping" and r.startswith("unhealthy: probe failed 2/2") for s, r in states)


def test_sigterm_stops_services_in_reverse_order_within_the_budget(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    extra = (
        ONLY_TEST_SERVICES
        + """
[services.first]
argv = ["sleep", "600"]
[services.first.probe]
start_seconds = 0.1
[services.second]
argv = ["sh", "-c", "trap '' TERM; sleep 600"]   # ignores SIGTERM: needs the SIGKILL after its grace
after = ["first"]
stop_grace = 0.5
[services.second.probe]
start_seconds = 0.1
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    daemon.wait_for(lambda: daemon.service("second")["state"] == "running", 20, "second running")
    pids = [daemon.service(n)["pid"] for n in ("first", "second")]
    assert daemon.stop(signal.SIGTERM) == 0
    for pid in pids:
        assert not psutil.pid_exists(pid)
    stops = [
        e["service"] for e in daemon.events() if e.get("event") == "state" and e.get("state") == "stopping"
    ]
    assert stops == ["second", "first"]
    assert any(
        e.get("event") == "stop_grace_expired" and e.get("service") == "second" for e in daemon.events()
    )
    assert daemon.events()[-1]["event"] == "daemon_stopped"


def test_output_lines_are_tagged_kept_and_secrets_masked(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    env = dict(
        daemon_env(tmp_path), AUTH_SECRET="s3cr3t-value-never-logged-0123456789", MY_MARKER="passed-through"
    )
    extra = (
        ONLY_TEST_SERVICES
        + """
[services.talker]
argv = ["sh", "-c", "echo out:$MY_MARKER; echo err:$AUTH_SECRET >&2; echo svc:$DANCODES_SERVICE; sleep 600"]
[services.talker.probe]
start_seconds = 0.1
"""
    )
    daemon = start_daemon(extra, wait_healthy=False, env=env)
    lines = daemon.wait_for(
        lambda: len(ls := daemon.get("/admin/services/talker/logs?n=10").json()["lines"]) >= 3 and ls,
        20,
        "three lines",
    )
    text = {(entry["stream"], entry["line"]) for entry in lines}
    assert ("stdout", "out:passed-through") in text  # the environment reaches children
    assert ("stderr", "err:[redacted]") in text
    assert ("stdout", "svc:talker") in text
    assert "s3cr3t-value-never-logged-0123456789" not in daemon.log()
    tagged = [e for e in daemon.events() if e.get("event") == "output" and e.get("service") == "talker"]
    assert {e["stream"] for e in tagged} == {"stdout", "stderr"}
    assert daemon.get("/admin/services/talker/logs?n=1").json()["lines"][0]["line"] in {
        "out:passed-through",
        "err:[redacted]",
        "svc:talker",
    }
    bad = daemon.get("/admin/services/talker/logs?n=lots")
    assert bad.status_code == 400
    assert bad.json() == {"error": "query parameter 'n' must be an integer, got 'lots'"}


def test_log_tail_is_bounded(start_daemon: Callable[..., DaemonProc]) -> None:
    extra = (
        ONLY_TEST_SERVICES
        + """
[daemon]
log_tail = 20
[services.chatty]
argv = ["sh", "-c", "seq 1 500; sleep 600"]
[services.chatty.probe]
start_seconds = 0.1
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    lines = daemon.wait_for(
        lambda: (
            (ls := daemon.get("/admin/services/chatty/logs?n=1000").json()["lines"])
            and ls[-1]["line"] == "500"
            and ls
        ),
        20,
        "all 500 lines",
    )
    assert [e["line"] for e in lines] == [str(i) for i in range(481, 501)]


def test_follow_streams_new_lines(start_daemon: Callable[..., DaemonProc]) -> None:
    extra = (
        ONLY_TEST_SERVICES
        + """
[services.ticker]
argv = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"]
[services.ticker.probe]
start_seconds = 0.1
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    seen: list[str] = []
    with (
        daemon.client(timeout=10) as client,
        client.stream("GET", "/admin/services/ticker/logs?follow=1&n=0") as response,
    ):
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for raw in response.iter_lines():
            if raw.strip():
                seen.append(json.loads(raw)["line"])
            if len(seen) >= 3:
                break
    numbers = [int(s.split()[1]) for s in seen]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3


def test_sighup_reload_applies_a_good_config_and_keeps_the_old_on_a_bad_one(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    extra = (
        ONLY_TEST_SERVICES
        + """
[services.a]
argv = ["sleep", "600"]
[services.a.probe]
start_seconds = 0.1
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    daemon.wait_for(lambda: daemon.service("a")["state"] == "running", 20, "a running")
    original = daemon.config.read_text()
    daemon.config.write_text(
        original + '[services.b]\nargv = ["sleep", "601"]\n[services.b.probe]\nstart_seconds = 0.1\n'
    )
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: daemon.service("b")["state"] == "running", 20, "b added by reload")
    pid_a = daemon.service("a")["pid"]
    daemon.config.write_text(original + "[services.a.restart]\npolicy = 'bogus'\n")
    daemon.proc.send_signal(signal.SIGHUP)
    failed = daemon.wait_for(
        lambda: [e for e in daemon.events() if e.get("event") == "config_reload_failed"],
        20,
        "reload failure logged",
    )
    assert "services.a.restart.policy" in failed[0]["error"]
    assert daemon.service("a")["pid"] == pid_a  # the running config was kept
    assert daemon.service("b")["state"] == "running"
    assert daemon.get("/admin/health").status_code == 200


def test_admin_control_needs_the_cookie_on_tcp_but_not_on_the_socket(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    daemon = start_daemon(ONLY_TEST_SERVICES, wait_healthy=False)
    base = f"http://127.0.0.1:{daemon.ports['app']}"
    assert httpx.get(f"{base}/admin/health", timeout=5).status_code == 200
    for method, path in [
        ("GET", "/admin/services"),
        ("GET", "/admin/processes"),
        ("POST", "/admin/processes/orphans/kill"),
    ]:
        response = httpx.request(method, base + path, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"error": "not signed in: log in at /auth/login"}
        assert daemon.client().request(method, path).status_code == 200
    assert oct(daemon.socket.stat().st_mode & 0o777) == "0o600"
    assert daemon.get("/admin/nope").json() == {"error": "not found: /admin/nope"}
    assert daemon.post("/admin/services/nope/restart").status_code == 404
    assert daemon.get("/admin/services/nope/logs").json() == {"error": "no service named 'nope'"}


def test_orphan_policy_kills_old_orphans_of_a_restarted_service_only(
    start_daemon: Callable[..., DaemonProc],
) -> None:
    # `setsid` puts the sleeps in sessions of their own, as opencode does with its tools, so they
    # survive their service's process group and come back to the daemon as orphans.
    extra = (
        ONLY_TEST_SERVICES
        + """
[orphans]
kill_after_minutes = 0.001
check_interval = 0.2
[services.leaver]
argv = ["sh", "-c", "setsid sleep 600 & sleep 600"]
[services.leaver.probe]
start_seconds = 0.1
[services.keeper]
argv = ["sh", "-c", "setsid sleep 601 & sleep 0.3"]
[services.keeper.probe]
start_seconds = 0.1
[services.keeper.restart]
policy = "never"
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    daemon.wait_for(lambda: daemon.service("leaver")["state"] == "running", 20, "leaver running")
    old = daemon.service("leaver")["pid"]
    os.kill(old, signal.SIGKILL)
    daemon.wait_for(lambda: daemon.service("leaver")["pid"] not in (None, old), 20, "leaver restarted")
    killed = daemon.wait_for(
        lambda: [e for e in daemon.events() if e.get("event") == "orphan_killed_by_policy"],
        20,
        "the policy to act",
    )
    assert killed[0]["service"] == "leaver"
    assert not psutil.pid_exists(killed[0]["pid"]) or psutil.Process(killed[0]["pid"]).status() == "zombie"
    orphans = daemon.wait_for(lambda: daemon.get("/admin/processes").json()["orphans"], 10, "keeper's orphan")
    assert [(o["service"], o["cmdline"]) for o in orphans] == [("keeper", ["sleep", "601"])]
    time.sleep(0.5)  # a few policy rounds: the keeper's orphan is spared, its service never restarted
    assert [o["pid"] for o in daemon.get("/admin/processes").json()["orphans"]] == [orphans[0]["pid"]]


DISPOSABLE = """
import http.server, signal, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def do_POST(self):
        print("disposed " + self.path, flush=True)
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass

def on_term(*_):
    print("got SIGTERM", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
http.server.HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""


def test_stop_disposes_first_then_signals(start_daemon: Callable[..., DaemonProc]) -> None:
    port = free_port()
    code = DISPOSABLE.replace("PORT", str(port))
    extra = (
        ONLY_TEST_SERVICES
        + f"""
[services.agent]
argv = ["python3", "-c", {json.dumps(code)}]
dispose_url = "http://127.0.0.1:{port}/global/dispose"
[services.agent.probe]
url = "http://127.0.0.1:{port}/"
timeout = 0.5
interval = 0.5
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    daemon.wait_for(lambda: daemon.service("agent")["state"] == "running", 20, "agent running")
    assert daemon.stop(signal.SIGTERM) == 0
    lines = [e["line"] for e in daemon.events() if e.get("event") == "output" and e.get("service") == "agent"]
    assert lines == ["disposed /global/dispose", "got SIGTERM"]


def test_sigterm_while_a_service_is_still_starting(start_daemon: Callable[..., DaemonProc]) -> None:
    extra = (
        ONLY_TEST_SERVICES
        + """
[services.slow]
argv = ["sleep", "600"]
[services.slow.probe]
url = "http://127.0.0.1:9/never"
timeout = 0.2
start_timeout = 600.0
"""
    )
    daemon = start_daemon(extra, wait_healthy=False)
    daemon.wait_for(lambda: daemon.service("slow")["state"] == "starting", 20, "slow starting")
    pid = daemon.service("slow")["pid"]
    assert daemon.stop(signal.SIGTERM) == 0
    assert not psutil.pid_exists(pid)
    assert [e["state"] for e in daemon.events() if e.get("service") == "slow" and e.get("event") == "state"][
        -2:
    ] == ["stopping", "stopped"]


def test_five_quick_kills_of_opencode_leave_it_down_at_most_backoff_max(tmp_path: Path) -> None:
    """The measured crash loop (5 SIGKILLs in 8 s left opencode down 302 s), with the real opencode.

    backoff_max is small so the test is quick; what is checked is the pause the daemon chose (its
    `backoff` events) and that opencode comes back healthy, not how long anything took.
    """
    root = tmp_path / "daemon"
    opencode_xdg(root / "data" / "opencode")  # no plugin install: opencode starts and stops cleanly
    extra = "[services.caddy]\nenabled = false\n[services.opencode.restart]\nbackoff_max = 2.0\n"
    daemon = launch_daemon(root, extra)
    try:
        killed: list[int] = []
        for i in range(5):
            pid = daemon.wait_for(
                lambda: (p := daemon.service("opencode")["pid"]) not in (None, *killed) and p,
                60,
                f"opencode run {i + 1}",
            )
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        def pauses() -> list[dict[str, object]]:
            return [
                e for e in daemon.events() if e.get("event") == "backoff" and e.get("service") == "opencode"
            ]

        loop = daemon.wait_for(lambda: [e for e in pauses() if e["crash_loop"]], 60, "the crash loop")
        assert loop[0]["delay"] == 2.0  # the slow retry is backoff_max, not minutes
        back = daemon.wait_for(
            lambda: (s := daemon.service("opencode"))["healthy"] is True and s["pid"] not in killed and s,
            60,
            "opencode back",
        )
        assert back["state"] == "running"
        assert back["restarts"] == 5
        assert back["last_exit"]["signal"] == "SIGKILL"
        assert all(float(str(e["delay"])) <= 2.0 for e in pauses())  # no pause ever passed backoff_max
        states = [e for e in daemon.events() if e.get("event") == "state" and e.get("service") == "opencode"]
        assert any(
            "crash loop: 5 failures in 60s, retrying every 2s" in (e.get("reason") or "") for e in states
        )
        assert daemon.get("/admin/health").status_code == 200
    finally:
        daemon.stop()
