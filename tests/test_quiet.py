"""The whole stack (real opencode and Caddy) under `dancodes run -q`, and Caddy's log lines as fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import DaemonProc

Start = Callable[..., DaemonProc]


def caddy_environ(daemon: DaemonProc) -> dict[str, str]:
    pid = daemon.service("caddy")["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_quiet_run_prints_nothing_on_a_healthy_start(start_daemon: Start) -> None:
    daemon = start_daemon(run_args=["-q"])  # waits for /admin/health 200: opencode and Caddy up
    assert {s["name"]: s["state"] for s in daemon.get("/admin/services").json()["services"]} == {
        "opencode": "running",
        "caddy": "running",
    }
    # their output was kept all the same, for `dancodes-ctl logs`
    assert daemon.get("/admin/services/caddy/logs").json()["lines"]
    assert daemon.log() == ""  # stdout and stderr both
    assert daemon.stop() == 0
    assert daemon.log() == ""


def test_caddys_json_lines_are_fields_of_the_daemons_event(start_daemon: Start) -> None:
    daemon = start_daemon()
    events = [e for e in daemon.events() if e.get("event") == "output" and e.get("service") == "caddy"]
    assert events
    assert all("line" not in e for e in events), [e for e in events if "line" in e]
    started = [e for e in events if e.get("msg") == "using config from file"]
    assert started
    assert (started[0]["caddy_level"], started[0]["level"]) == ("info", "info")
    assert all(isinstance(e.get("caddy_level"), str) for e in events)
    # the tail keeps Caddy's line as it came, and the ctl shows it readably
    ctl = daemon.ctl("logs", "caddy", "-n", "500")
    assert ctl.returncode == 0
    assert "info: using config from file file=" in ctl.stdout
    assert '{"level"' not in ctl.stdout
    raw = daemon.ctl("-v", "logs", "caddy", "-n", "500").stdout
    assert '"msg":"using config from file"' in raw
    secret = caddy_environ(daemon)["DANCODES_PROXY_SECRET"]
    assert secret not in daemon.log()
    assert secret not in json.dumps(daemon.get("/admin/services/caddy/logs?n=1000").json())
