"""opencode's memory ceiling (supervisor.memory): the rule itself, then a real opencode under a limit set live
below its size: no restart while a reply streams, one restart once the turn ends, no loop after it (the fresh
process is over the limit from its first measure: reported, never restarted), and the chat readable after."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.memory import Verdict, decide, tree_rss_mb
from tests.conftest import DANCODES_CTL
from tests.stack import Stack, running_stack

# ------------------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize(
    ("rss", "limit", "hard", "busy", "first", "action"),
    [
        (None, 100, 200, False, False, "ok"),  # not measured
        (500, None, None, False, False, "ok"),  # no ceiling
        (90, 100, 200, True, False, "ok"),
        (150, 100, 200, True, False, "wait"),  # a turn runs: not below the hard limit
        (150, 100, 200, False, False, "restart"),  # the moment no turn runs
        (250, 100, 200, True, False, "wait"),  # past the hard limit once: maybe a child's spike
        (250, 100, 200, False, False, "restart"),  # no turn: at once
        (250, None, 200, True, False, "wait"),  # a hard limit alone
        (150, 100, None, True, False, "wait"),  # no hard limit: never mid-turn
        (150, 100, 200, False, True, "exempt"),  # over from its first measure: never restarted (no loop)
        (250, 100, 200, True, True, "exempt"),
    ],
)
def test_the_ceiling_restarts_at_the_right_moment_and_never_in_a_loop(
    rss: float | None, limit: float | None, hard: float | None, busy: bool, first: bool, action: str
) -> None:
    verdict = decide(rss, limit, hard, busy=busy, first_of_run=first)
    assert verdict.action == action
    assert (verdict.note is None) == (action == "ok")


def test_past_the_hard_limit_twice_in_a_row_it_restarts_even_mid_turn() -> None:
    assert decide(250, 100, 200, busy=True, first_of_run=False, over_hard_before=True) == Verdict(
        "restart", "250 MB is past memory_hard_limit_mb (200 MB): restarted, even mid-turn"
    )
    assert decide(150, 100, 200, busy=True, first_of_run=False, over_hard_before=True).action == "wait"


def test_what_the_ceiling_says_names_the_limit_passed() -> None:
    assert decide(150, 100, 200, busy=True, first_of_run=False) == Verdict(
        "wait", "150 MB is past memory_limit_mb (100 MB): restarting once no chat is in a turn"
    )
    assert decide(250, 100, 200, busy=False, first_of_run=True) == Verdict(
        "exempt",
        "250 MB is past memory_hard_limit_mb (200 MB) since it started: not restarted again "
        "(raise memory_hard_limit_mb)",
    )


def test_the_tree_counts_children_and_a_gone_process_is_none() -> None:
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        assert (tree_rss_mb(parent.pid) or 0) > 0
    finally:
        parent.kill()
        parent.wait()
    assert tree_rss_mb(parent.pid) is None


# ------------------------------------------------------------------------------------------ real opencode


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # measured often, so the test's rounds pass quickly; the default limit (700 MB) is above opencode's. The
    # hard limit (decide's table above) is out of the way: measured every 0.2 s, a child's spike past it (seen
    # once here at 958 MB, on a loaded machine) would be two measures in a row and cut the held turn
    extra = "[daemon]\nmemory_interval = 0.2\n[services.opencode]\nmemory_hard_limit_mb = 8000\n"
    with running_stack(tmp_path_factory.mktemp("memory"), extra, memory_ceiling=True) as stack:
        yield stack


def opencode(stack: Stack) -> dict[str, Any]:
    return stack.daemon.service("opencode")


def events(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [e for e in stack.daemon.events() if e.get("event") == name]


def ctl(stack: Stack, *args: str) -> None:
    done = subprocess.run(
        [DANCODES_CTL, "--socket", str(stack.daemon.socket), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_a_limit_below_opencodes_size_restarts_it_once_when_the_turn_ends_and_not_again(
    stack: Stack,
) -> None:
    with stack.signed_in() as client:
        stack.remote("acme", "heavy")
        cloned = client.post("/admin/repos/clone", json={"repo": "acme/heavy", "wait": True})
        assert cloned.status_code == 201, cloned.text
        directory = {"x-opencode-directory": cloned.json()["repo"]["path"]}
        session_id = client.post("/session", headers=directory, json={}).json()["id"]
        before = opencode(stack)
        assert before["memory_limit_mb"] == 700
        assert before["memory_hard_limit_mb"] == 8000
        stack.daemon.wait_for(lambda: opencode(stack)["memory_mb"], 30, "opencode measured")

        stack.llm.hold()  # the reply stops after its first chunk: the turn runs until released
        try:
            stack.llm.reply_text("a reply the restart must not cut", chunk_size=8)
            sent = client.post(
                f"/session/{session_id}/prompt_async",
                headers=directory,
                json={"parts": [{"type": "text", "text": "go"}]},
            )
            assert sent.status_code == 204
            stack.llm.wait_for_requests(1)
            # live, through the control socket: applies at once, and does not restart it by itself
            ctl(stack, "config", "set", "services.opencode.memory_limit_mb", "50")
            waiting = stack.daemon.wait_for(
                lambda: events(stack, "memory_restart_waiting"), 30, "the restart waiting for the turn"
            )
            assert waiting[0]["service"] == "opencode"
            now = opencode(stack)
            assert (now["run"], now["memory_restarts"]) == (before["run"], 0)
            assert now["memory_limit_mb"] == 50
            assert "restarting once no chat is in a turn" in now["memory_note"]
        finally:
            stack.llm.release()

        restarted = stack.daemon.wait_for(lambda: events(stack, "memory_restart"), 60, "the memory restart")
        assert restarted[0]["busy"] is False  # the turn had ended
        fresh = stack.daemon.wait_for(
            lambda: (s := opencode(stack))["run"] != before["run"] and s["state"] == "running" and s,
            60,
            "opencode back",
        )
        exempt = stack.daemon.wait_for(
            lambda: events(stack, "memory_over_at_start"), 30, "the fresh process reported over the limit"
        )
        assert "not restarted again" in exempt[0]["note"]

        # no loop: ten more measures of the fresh process, still the same run, still one restart
        seen: set[float] = set()

        def measured_ten_times() -> bool:
            seen.add(opencode(stack)["memory_checked_at"])
            return len(seen) > 10

        stack.daemon.wait_for(measured_ten_times, 60, "ten measures")
        after = opencode(stack)
        assert (after["run"], after["memory_restarts"]) == (fresh["run"], 1)
        assert "since it started: not restarted again" in after["memory_note"]
        assert len(events(stack, "memory_restart")) == 1

        # the chat is readable after, with the reply the restart waited for
        def reply() -> str:
            listed = client.get(f"/session/{session_id}/message", headers=directory)
            parts = listed.json()[-1]["parts"] if listed.status_code == 200 else []
            return "".join(p.get("text", "") for p in parts if p.get("type") == "text")

        assert stack.daemon.wait_for(reply, 30, "the chat readable") == "a reply the restart must not cut"

        # a limit above it again: no note, no restart
        ctl(stack, "config", "set", "services.opencode.memory_limit_mb", "800")
        stack.daemon.wait_for(lambda: opencode(stack)["memory_note"] is None, 30, "the note cleared")
        assert opencode(stack)["run"] == fresh["run"]


def test_a_hard_limit_below_the_soft_one_is_refused_in_one_line(stack: Stack, tmp_path: Path) -> None:
    done = subprocess.run(
        [DANCODES_CTL, "--socket", str(stack.daemon.socket), "config", "set",
         "services.opencode.memory_hard_limit_mb", "10"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "memory_hard_limit_mb: 10 MB is below memory_limit_mb" in done.stderr
    assert "Traceback" not in done.stderr
    with httpx.Client(base_url=stack.url) as anonymous:
        assert anonymous.get("/admin/health").status_code == 200  # still up, as it was
