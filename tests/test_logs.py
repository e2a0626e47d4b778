"""How a child's output becomes the daemon's log: Caddy's JSON lines as fields, a Node warning's
object dump folded into one line, and secrets masked in every merged field."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from supervisor.ctl import readable
from supervisor.logs import Redactor, ServiceLog, WarningFolder, json_fields

DATA = Path(__file__).parent / "data"

#: A line Caddy wrote in a browser test (its request headers cut short).
CADDY_LINE = (
    '{"level":"warn","ts":1795772874.9578469,"logger":"http.handlers.reverse_proxy",'
    '"msg":"aborting with incomplete response","upstream":"127.0.0.1:55237","duration":0.361977314,'
    '"request":{"remote_ip":"127.0.0.1","proto":"HTTP/1.1","method":"GET","host":"127.0.0.1:39409",'
    '"uri":"/event?directory=%2Ftmp","headers":{"Authorization":["REDACTED"],"Cookie":["REDACTED"],'
    '"Accept":["text/event-stream"]}},"error":"reading: context canceled"}'
)


def test_a_caddy_json_line_becomes_fields_and_its_level_does_not_replace_ours() -> None:
    fields = json_fields("caddy", CADDY_LINE)
    assert fields is not None
    assert fields["caddy_level"] == "warn"
    assert "level" not in fields
    assert fields["logger"] == "http.handlers.reverse_proxy"
    assert fields["msg"] == "aborting with incomplete response"
    assert fields["request"]["headers"]["Cookie"] == ["REDACTED"]
    assert fields["error"] == "reading: context canceled"


def test_lines_that_are_not_a_json_object_stay_lines() -> None:
    for line in ["", "plain text", "{not json", "[1, 2]", '"a string"', " {}", "{} trailing"]:
        assert json_fields("caddy", line) is None, line
    # every key of our own event is kept apart from the child's
    clash = json_fields("x", '{"event": 1, "timestamp": 2, "service": 3, "stream": 4, "line": 5}')
    assert clash == {"x_event": 1, "x_timestamp": 2, "x_service": 3, "x_stream": 4, "x_line": 5}


def recorded_dump() -> list[str]:
    """opencode's MaxListeners warning as it printed it: 33 lines, the object dump and a stack."""
    return (DATA / "opencode-maxlisteners.txt").read_text().splitlines()


def test_the_maxlisteners_dump_folds_into_its_first_line_and_repeats_are_counted() -> None:
    dump = recorded_dump()
    assert len(dump) > 30
    folder = WarningFolder()
    stream = [*dump, "opencode server listening on http://127.0.0.1:1", *dump, "after"]
    kept = [k for line in stream if (k := folder.feed(line)) is not None]
    assert kept == [
        dump[0],
        "opencode server listening on http://127.0.0.1:1",
        dump[0] + " (seen 2 times)",
        "after",
    ]
    assert dump[0].startswith("MaxListenersExceededWarning: ")


def test_indented_lines_not_after_a_warning_are_kept() -> None:
    folder = WarningFolder()
    lines = ["Traceback (most recent call last):", '  File "x.py", line 1', "}", ""]
    assert [folder.feed(line) for line in lines] == lines


def output_events(log: ServiceLog, lines: list[str]) -> list[MutableMapping[str, Any]]:
    with structlog.testing.capture_logs() as events:
        for line in lines:
            log.append("stdout", line)
    return [e for e in events if e["event"] == "output"]


def test_the_service_log_keeps_one_line_for_the_dump_in_its_tail_and_its_events() -> None:
    log = ServiceLog("opencode", 100, Redactor([]))
    events = output_events(log, [*recorded_dump(), "next"])
    shown = [e for e in events if e["log_level"] == "info"]
    assert [e["line"] for e in shown] == [recorded_dump()[0], "next"]
    # the detail is there for -v, as debug events
    folded = [e for e in events if e["log_level"] == "debug"]
    assert [e["line"] for e in folded] == recorded_dump()[1:]
    assert all(e["folded"] for e in folded)
    assert [entry.line for entry in log.tail(100)] == [recorded_dump()[0], "next"]


def test_secrets_stay_masked_in_merged_fields() -> None:
    secret = "proxy-secret-<&>-0123456789"
    # Go's JSON escapes <, & and >: the raw line does not contain the secret as written
    escaped = secret.replace("<", "\\u003c").replace("&", "\\u0026").replace(">", "\\u003e")
    line = json.dumps(
        {
            "level": "info",
            "msg": "handled request",
            "request": {"headers": {"X-Dancodes-Proxy": ["SECRET"], "Cookie": ["REDACTED"]}},
            "note": "SECRET",
            "list": ["a", {"deep": "SECRET"}],
        }
    ).replace("SECRET", escaped)
    assert secret not in line
    log = ServiceLog("caddy", 10, Redactor([secret]))
    [event] = output_events(log, [line])
    assert event["caddy_level"] == "info"
    assert event["msg"] == "handled request"
    assert event["request"]["headers"]["X-Dancodes-Proxy"] == ["[redacted]"]
    assert event["note"] == "[redacted]"
    assert event["list"] == ["a", {"deep": "[redacted]"}]
    assert "line" not in event
    assert secret not in json.dumps(event)
    # and a secret written plainly in the raw line is masked in the tail
    plain = ServiceLog("caddy", 10, Redactor([secret]))
    output_events(plain, ['{"msg": "' + secret + '"}'])
    assert secret not in plain.tail(1)[0].line


def test_ctl_shows_a_caddy_line_readably() -> None:
    assert readable(CADDY_LINE) == (
        "warn http.handlers.reverse_proxy: aborting with incomplete response "
        "request=GET /event?directory=%2Ftmp upstream=127.0.0.1:55237 duration=0.361977314 "
        "error=reading: context canceled"
    )
    assert readable("plain") == "plain"
    assert readable('{"no": "msg"}') == '{"no": "msg"}'
