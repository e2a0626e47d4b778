"""A turn cut by a restart of opencode (here SIGKILL mid-reply) is marked interrupted, kept across a restart
of the daemon (`<data_dir>/chats.json`), cleared by the next turn; with `resume = "continue"` the daemon
sends it "continue" once opencode is back."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.chats import CUT, ChatBoard, chat_status
from supervisor.opencode import OpencodeClient
from tests.stack import Stack, running_stack


def test_interrupted_is_a_status_of_its_own_until_a_turn_begins() -> None:
    assert chat_status("idle", None, False, interrupted=True) == "interrupted"
    assert chat_status("idle", "boom", False, interrupted=True) == "interrupted"
    assert chat_status("busy", None, False, interrupted=True) == "busy"
    assert chat_status("idle", None, False) == "idle"


def test_the_record_brings_back_running_and_interrupted_chats(tmp_path: Path) -> None:
    record = tmp_path / "chats.json"
    board = ChatBoard(OpencodeClient("http://127.0.0.1:9"), record=record)
    board.apply(
        "/wt/a", {"type": "session.status", "properties": {"sessionID": "s1", "status": {"type": "busy"}}}
    )
    assert json.loads(record.read_text()) == {"running": {"s1": "/wt/a"}, "interrupted": {}}
    board.sessions["s2"] = board.get("s2")
    board.sessions["s2"].directory, board.sessions["s2"].interrupted = "/wt/b", CUT
    board.apply("/wt/b", {"type": "message.updated", "properties": {"sessionID": "s2", "info": {}}})
    board.apply(
        "/wt/a", {"type": "session.status", "properties": {"sessionID": "s1", "status": {"type": "busy"}}}
    )
    board._remember()

    again = ChatBoard(OpencodeClient("http://127.0.0.1:9"), record=record)
    # the running one is rechecked once opencode's stream is back; the interrupted one stays so
    assert (again.get("s1").turn, again.get("s1").directory) == ("busy", "/wt/a")
    assert (again.get("s2").status, again.get("s2").interrupted) == ("interrupted", CUT)
    record.write_text("{not json")
    assert ChatBoard(OpencodeClient("http://127.0.0.1:9"), record=record).sessions == {}  # logged, not fatal


# ------------------------------------------------------------------------------------------ real opencode


def start_chat(stack: Stack, client: httpx.Client, name: str) -> tuple[str, dict[str, str]]:
    """A chat in its worktree, once the daemon follows opencode's events (a turn begun before that is one
    it never hears of: the test would wait for a busy it cannot see)."""
    session_id, worktree = stack.chat(client, "acme", name)
    stack.daemon.wait_for(lambda: chat(client, session_id), 30, "the daemon following the chat")
    return session_id, {"x-opencode-directory": str(worktree)}


def prompt(client: httpx.Client, session_id: str, directory: dict[str, str], text: str) -> None:
    sent = client.post(
        f"/session/{session_id}/prompt_async",
        headers=directory,
        json={"parts": [{"type": "text", "text": text}]},
    )
    assert sent.status_code == 204, sent.text


def chat(client: httpx.Client, session_id: str) -> dict[str, Any] | None:
    body = client.get("/admin/chats").json()
    if not body["following"]:
        return None
    found: dict[str, Any] | None = next((c for c in body["chats"] if c["session_id"] == session_id), None)
    return found


def kill_mid_reply(stack: Stack, client: httpx.Client, session_id: str, directory: dict[str, str]) -> None:
    """A reply held after its first chunk, then opencode killed with SIGKILL; returns once it is back."""
    stack.llm.reset()
    stack.llm.hold()
    stack.llm.reply_text("a reply opencode will not live to finish", chunk_size=4)
    prompt(client, session_id, directory, "start something long")
    stack.daemon.wait_for(lambda: (c := chat(client, session_id)) and c["status"] == "busy", 30, "busy")
    stack.llm.wait_for_requests(1)  # the reply has begun (and stops after its first chunk)
    old = stack.daemon.service("opencode")["pid"]
    os.kill(old, signal.SIGKILL)
    stack.llm.release()
    stack.daemon.wait_for(
        lambda: (s := stack.daemon.service("opencode"))["state"] == "running" and s["pid"] != old,
        60,
        "opencode restarted",
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("resume")) as stack:
        yield stack


def test_a_turn_cut_by_sigkill_is_marked_interrupted_until_the_next_turn(stack: Stack) -> None:
    with stack.signed_in() as client:
        session_id, directory = start_chat(stack, client, "cut")
        kill_mid_reply(stack, client, session_id, directory)
        cut = stack.daemon.wait_for(
            lambda: (c := chat(client, session_id)) and c["status"] == "interrupted" and c, 60, "interrupted"
        )
        assert cut["interrupted"] == CUT
        record = json.loads((stack.daemon.data_dir / "chats.json").read_text())
        assert record["interrupted"] == {session_id: directory["x-opencode-directory"]}
        assert not [e for e in stack.daemon.events() if e.get("event") == "chat_continued"]  # "mark" only

        stack.llm.reply_text("back, and finished this time")
        prompt(client, session_id, directory, "are you there?")
        done = stack.daemon.wait_for(
            lambda: (c := chat(client, session_id)) and c["status"] == "idle" and c,
            60,
            "idle after a new turn",
        )
        assert done["interrupted"] is None
        assert json.loads((stack.daemon.data_dir / "chats.json").read_text())["interrupted"] == {}


def test_with_resume_continue_the_cut_turn_is_continued_once(stack: Stack) -> None:
    # live, like the memory limits: no restart of opencode for it
    changed = stack.daemon.ctl("config", "set", "services.opencode.resume", '"continue"')
    assert changed.returncode == 0, changed.stderr
    with stack.signed_in() as client:
        session_id, directory = start_chat(stack, client, "resumed")
        kill_mid_reply(stack, client, session_id, directory)
        stack.llm.reply_text("continuing where I was cut off")
        requests = stack.llm.wait_for_requests(2, timeout=60)
        assert requests[-1].last_user_text == "continue"
        stack.daemon.wait_for(
            lambda: (c := chat(client, session_id)) and c["status"] == "idle" and c["interrupted"] is None,
            60,
            "the continued turn finished",
        )
        continued = [e for e in stack.daemon.events() if e.get("event") == "chat_continued"]
        assert [e["session_id"] for e in continued] == [session_id]
        listed = client.get(f"/session/{session_id}/message", headers=directory).json()
        texts = ["".join(p.get("text", "") for p in m["parts"] if p.get("type") == "text") for m in listed]
        assert texts[-2:] == ["continue", "continuing where I was cut off"]
