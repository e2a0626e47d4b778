"""`dancodes run -q` and `-v` on real daemons (the whole stack with opencode and Caddy for -q), Caddy's
log lines as fields of the daemon's events, and a Node warning's dump folded into one line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import DANCODES, ONLY_TEST_SERVICES, DaemonProc, daemon_env, toml_value

Start = Callable[..., DaemonProc]


def caddy_environ(daemon: DaemonProc) -> dict[str, str]:
    pid = daemon.service("caddy")["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def test_quiet_run_prints_nothing_on_a_healthy_start(start_daemon: Start) -> None:
    daemon = start_daemon(run_args=["-q"])  # waits for /admin/health 200: opencode up

    def states() -> dict[str, str]:
        return {s["name"]: s["state"] for s in daemon.get("/admin/services").json()["services"]}

    daemon.wait_for(lambda: states() == {"opencode": "running", "caddy": "running"}, 30, "both running")
    # their output was kept all the same, for `dancodes-ctl logs`
    assert daemon.get("/admin/services/caddy/logs").json()["lines"]
    # stdout and stderr both: nothing, unless something went wrong on the way (a busy machine may make a
    # probe time out once: a warning, which -q still prints)
    assert _only_warnings(daemon.log())
    assert daemon.stop() == 0
    assert _only_warnings(daemon.log())


def _only_warnings(log: str) -> bool:
    levels = [json.loads(line).get("level") for line in log.splitlines() if line.strip()]
    return all(level in ("warning", "error") for level in levels)


def test_caddys_json_lines_are_fields_of_the_daemons_event(start_daemon: Start) -> None:
    daemon = start_daemon()

    def caddy_started() -> list[dict[str, Any]]:  # health needs opencode alone: Caddy starts after it
        said = [e for e in daemon.events() if e.get("event") == "output" and e.get("service") == "caddy"]
        return said if any(e.get("msg") == "using config from file" for e in said) else []

    events: list[dict[str, Any]] = daemon.wait_for(caddy_started, 30, "caddy's first lines")
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


#: A service that writes a Node-style warning: its first line, an object dump, a stack, blank lines
#: (the braces come from chr(): the daemon reads {...} in argv as its placeholders).
WARNER_SCRIPT = (
    "import sys, time; o, c = chr(123), chr(125); "
    "print('FooWarning: too many listeners\\n emitter: M ' + o + '\\n  a: 1,\\n' + c + "
    "'\\n    at f (x.js:1:2)\\n', file=sys.stderr, flush=True); "
    "print('done', file=sys.stderr, flush=True); time.sleep(600)"
)
WARNER = (
    ONLY_TEST_SERVICES
    + f"""
[services.warner]
argv = ["python3", "-c", {toml_value(WARNER_SCRIPT)}]
[services.warner.probe]
start_seconds = 0.2
"""
)


def warner_output(daemon: DaemonProc) -> list[tuple[str, str, bool]]:
    """The warner's output events (level, line, folded), once its last line, after the dump, is in."""
    daemon.wait_for(
        lambda: any(e.get("line") == "done" for e in daemon.events()), 30, "the warner's last line"
    )
    return [
        (e["level"], e["line"], bool(e.get("folded")))
        for e in daemon.events()
        if e.get("event") == "output" and e.get("service") == "warner" and e["stream"] == "stderr"
    ]


def test_a_warning_dump_is_one_line_and_verbose_shows_the_rest(start_daemon: Start) -> None:
    plain = start_daemon(WARNER, wait_healthy=False)
    assert warner_output(plain) == [
        ("info", "FooWarning: too many listeners", False),
        ("info", "done", False),
    ]
    tail = plain.get("/admin/services/warner/logs").json()["lines"]
    assert [e["line"] for e in tail] == ["FooWarning: too many listeners", "done"]

    verbose = start_daemon(WARNER, wait_healthy=False, run_args=["-v"])
    assert warner_output(verbose) == [
        ("info", "FooWarning: too many listeners", False),
        ("debug", " emitter: M {", True),
        ("debug", "  a: 1,", True),
        ("debug", "}", True),
        ("debug", "    at f (x.js:1:2)", True),
        ("debug", "", True),
        ("info", "done", False),
    ]


def test_quiet_run_still_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[ports]\npublic = 'eighty'\n")
    result = subprocess.run(
        [DANCODES, "run", "-q", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        env=daemon_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"dancodes: config {bad}: ports.public")
