"""`GET /admin/chats` and the `ChatBoard` behind it: every chat's status from opencode's global events.

The board's rules are checked on event sequences recorded from opencode 1.18.33; the endpoint is
checked through Caddy against the real opencode and the scripted LLM, including that polling it
boots no opencode instance (an instance boot shows as a `project.updated` event on `/global/event`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.chats import ChatBoard
from supervisor.opencode import OpencodeClient
from tests.sse import EventStream
from tests.stack import Stack, running_stack

SID = "ses_0000000000000000000000000a"
LOST = "ses_0lost0000000000000000000"  # a worktree whose session opencode never had


def status(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": "session.status", "properties": {"sessionID": SID, "status": {"type": kind, **extra}}}


def assistant(error: dict[str, Any] | None = None, message_id: str = "msg_1") -> dict[str, Any]:
    info: dict[str, Any] = {"id": message_id, "sessionID": SID, "role": "assistant", "time": {"created": 1}}
    if error is not None:
        info["error"] = error
    return {"type": "message.updated", "properties": {"sessionID": SID, "info": info}}


ABORT = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}
API_ERROR = {"name": "APIError", "data": {"message": "the model refused"}}


@pytest.fixture
def board() -> ChatBoard:
    return ChatBoard(OpencodeClient("http://127.0.0.1:9"))


def test_a_turn_is_busy_then_idle(board: ChatBoard) -> None:
    board.apply("/wt/a", status("busy"))
    assert board.get(SID).status == "busy"
    assert board.get(SID).directory == "/wt/a"
    board.apply("/wt/a", {"type": "message.part.delta", "properties": {"sessionID": SID, "delta": "x"}})
    board.apply("/wt/a", assistant())
    board.apply("/wt/a", status("idle"))
    board.apply("/wt/a", {"type": "session.idle", "properties": {"sessionID": SID}})
    assert board.get(SID).status == "idle"
    assert board.get(SID).error is None
    assert board.get(SID).updated > 0


def test_a_retrying_turn_says_so_with_the_providers_message(board: ChatBoard) -> None:
    board.apply("/wt/a", status("retry", attempt=1, message="boom", next=1_795_771_236_428))
    chat = board.get(SID)
    assert chat.status == "retry"
    assert chat.as_json()["retry"] == {"attempt": 1, "message": "boom", "next": 1_795_771_236.428}
    board.apply("/wt/a", status("busy"))
    assert (board.get(SID).status, board.get(SID).as_json()["retry"]) == ("busy", None)


def test_a_failed_turn_is_an_error_until_the_next_turn(board: ChatBoard) -> None:
    board.apply("/wt/a", status("busy"))
    board.apply("/wt/a", assistant(API_ERROR))
    assert board.get(SID).status == "busy"  # still running until opencode says idle
    board.apply("/wt/a", status("idle"))
    assert (board.get(SID).status, board.get(SID).error) == ("error", "the model refused")
    board.apply("/wt/a", status("busy"))
    assert (board.get(SID).status, board.get(SID).error) == ("busy", None)
    board.apply("/wt/a", assistant(API_ERROR))  # opencode sends older messages again during a turn
    board.apply("/wt/a", assistant(message_id="msg_2"))
    board.apply("/wt/a", assistant(API_ERROR))
    board.apply("/wt/a", status("idle"))
    assert (board.get(SID).status, board.get(SID).error) == ("idle", None)


def test_a_session_error_event_marks_an_idle_chat(board: ChatBoard) -> None:
    event = {
        "type": "session.error",
        "properties": {"sessionID": SID, "error": {"name": "ProviderAuthError"}},
    }
    board.apply("/wt/a", event)
    assert (board.get(SID).status, board.get(SID).error) == ("error", "ProviderAuthError")


def test_stopping_a_turn_is_not_an_error(board: ChatBoard) -> None:
    board.apply("/wt/a", status("busy"))
    board.apply("/wt/a", {"type": "session.error", "properties": {"sessionID": SID, "error": ABORT}})
    board.apply("/wt/a", assistant(ABORT))
    board.apply("/wt/a", status("idle"))
    assert (board.get(SID).status, board.get(SID).error) == ("idle", None)


def test_deleted_and_forgotten_sessions_leave_the_board(board: ChatBoard) -> None:
    board.apply("/wt/a", status("busy"))
    board.apply("/wt/a", {"type": "session.deleted", "properties": {"sessionID": SID, "info": {}}})
    assert SID not in board.sessions
    board.apply("/wt/a", status("idle"))
    board.forget_except({"ses_other"})
    assert board.sessions == {}


def test_events_without_a_session_change_nothing(board: ChatBoard) -> None:
    board.apply("global", {"type": "project.updated", "properties": {"id": "x"}})
    board.apply("/wt/a", {"type": "server.heartbeat", "properties": {}})
    board.apply("/wt/a", {"type": "session.status", "properties": "not an object"})
    assert board.sessions == {}


# ------------------------------------------------------------------------------------------ the endpoint


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("chats")) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        yield client


@pytest.fixture(scope="module")
def chat(stack: Stack, client: httpx.Client) -> tuple[str, Path]:
    """A chat of `acme/board` in its worktree: (session id, worktree path)."""
    return stack.chat(client, "acme", "board")


def chat_of(client: httpx.Client, session_id: str) -> dict[str, Any] | None:
    """The chat as listed, or None while the daemon cannot see opencode's sessions and events (yet)."""
    answer = client.get("/admin/chats")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    if body["opencode"] is not True or body["following"] is not True:
        return None
    found: dict[str, Any] = next(c for c in body["chats"] if c["session_id"] == session_id)
    return found


def wait_chat(
    stack: Stack,
    client: httpx.Client,
    session_id: str,
    match: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = chat_of(client, session_id)
        return found if found is not None and match(found) else None

    found: dict[str, Any] = stack.daemon.wait_for(check, 30, f"the chat {what}")
    return found


def wait_reply_stored(stack: Stack, client: httpx.Client, session_id: str, path: Path) -> None:
    def stored() -> bool:
        url, headers = f"/session/{session_id}/message", {"x-opencode-directory": str(path)}
        last = client.get(url, headers=headers).json()[-1]["info"]
        return last["role"] == "assistant" and bool(last["time"].get("completed"))

    stack.daemon.wait_for(stored, 30, "the last reply stored")


def prompt(client: httpx.Client, session_id: str, path: Path, text: str) -> None:
    sent = client.post(
        f"/session/{session_id}/prompt_async",
        headers={"x-opencode-directory": str(path)},
        json={"parts": [{"type": "text", "text": text}]},
    )
    assert sent.status_code == 204, sent.text


def test_the_list_joins_worktree_session_and_status(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    session_id, path = chat
    listed = wait_chat(stack, client, session_id, lambda c: c["found"] is True, "found")
    assert listed["repo"] == "acme/board"
    assert listed["path"] == str(path)
    assert listed["status"] == "idle"
    assert isinstance(listed["title"], str)
    assert listed["title"]
    assert listed["created"] > 0


def test_busy_idle_and_error_follow_the_turns(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    session_id, path = chat
    stack.llm.reset()
    stack.llm.hold()
    try:
        stack.llm.reply_text("held back for a moment", chunk_size=4)
        prompt(client, session_id, path, "first")
        busy = wait_chat(stack, client, session_id, lambda c: c["status"] == "busy", "busy")
        assert busy["error"] is None
    finally:
        stack.llm.release()
    idle = wait_chat(stack, client, session_id, lambda c: c["status"] == "idle", "idle again")
    assert idle["updated"] >= busy["updated"]

    stack.llm.reply_error(400, "the scripted model refuses this one")
    prompt(client, session_id, path, "second")
    failed = wait_chat(stack, client, session_id, lambda c: c["status"] == "error", "an error")
    assert "refuses this one" in failed["error"]
    # opencode goes idle before it stores the failed reply; a prompt in between is dropped (1.18.33)
    wait_reply_stored(stack, client, session_id, path)

    stack.llm.reply_text("fine again")
    prompt(client, session_id, path, "third")
    fine = wait_chat(stack, client, session_id, lambda c: c["status"] == "idle", "idle after the error")
    assert fine["error"] is None


def test_the_apps_stream_joined_mid_reply_has_every_chunk_once(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    """opencode stores a text part empty until it ends: the daemon's stream gives a page that opens
    mid-reply the text so far in its snapshot, then the rest as it comes, each chunk once."""
    session_id, path = chat
    stack.llm.reset()
    text = "".join(f"tick {i} " for i in range(30))
    stack.llm.hold()  # the reply stops after its first chunk until released: joined mid-reply, surely
    opencode = EventStream(f"{stack.url}/global/event", path, cookies=client.cookies).start()
    joined: EventStream | None = None
    try:
        stack.llm.reply_text(text, chunk_size=6)
        prompt(client, session_id, path, "count slowly")
        first = opencode.wait_for(
            lambda e: e["type"] == "message.part.delta" and e["properties"]["sessionID"] == session_id
        )["properties"]
        stored = client.get(f"/session/{session_id}/message", headers={"x-opencode-directory": str(path)})
        part = next(p for m in stored.json() for p in m["parts"] if p["id"] == first["partID"])
        assert part.get("text", "") == ""  # what a page reading opencode alone would show

        url = f"{stack.url}/admin/chats/events?follow=1"
        joined = EventStream(url, path, cookies=client.cookies).start(ready="snapshot")
        snapshot = joined.events[0]["properties"]
        live = [p for p in snapshot["live"] if p["partID"] == first["partID"]]
        assert [p["text"] for p in live] == [first["delta"]]
        state = next(c for c in snapshot["chats"] if c["sessionID"] == session_id)
        assert state["status"] == "busy"
    finally:
        stack.llm.release()
        opencode.close()
    try:
        joined.wait_for(
            lambda e: (
                e["type"] == "chat.status"
                and e["properties"]["sessionID"] == session_id
                and e["properties"]["status"] == "idle"
            )
        )
        deltas = [e["properties"] for e in joined.of_session(session_id, "message.part.delta")]
        assert live[0]["text"] + "".join(d["delta"] for d in deltas if d["partID"] == first["partID"]) == text
    finally:
        joined.close()


def test_a_worktree_whose_session_is_gone_is_not_found(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    made = client.post("/admin/worktrees", json={"repo": "acme/board", "session_id": LOST})
    assert made.status_code == 201, made.text
    try:
        wait_chat(stack, client, LOST, lambda c: c["found"] is False, "not found")
        wait_chat(stack, client, chat[0], lambda c: c["found"] is True, "found")
    finally:
        gone = client.delete(f"/admin/worktrees/acme/board/{LOST}")
        assert gone.status_code == 200, gone.text


def test_polling_the_list_boots_no_instance(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    session_id, path = chat
    opencode = f"http://127.0.0.1:{stack.daemon.ports['opencode']}"
    headers = {"x-opencode-directory": str(path)}
    auth = stack.daemon.opencode_auth
    disposed = httpx.post(f"{opencode}/instance/dispose", headers=headers, timeout=10, auth=auth)
    assert disposed.status_code == 200, disposed.text
    # opencode's session list boots the instance of its own cwd, once
    wait_chat(stack, client, session_id, lambda c: True, "listed")
    events = EventStream(f"{opencode}/global/event", path, auth=auth).start()
    try:
        for _ in range(3):
            wait_chat(stack, client, session_id, lambda c: True, "listed")
        time.sleep(1.5)
        assert [e for e in events.events if e["type"] == "project.updated"] == []
        # the control: asking the worktree's instance anything does boot it, and that shows
        status = client.get("/session/status", headers=headers)
        assert status.status_code == 200, status.text
        events.wait_for(lambda e: e["type"] == "project.updated", 10)
    finally:
        events.close()


def test_a_quiet_stream_sends_a_heartbeat_event_the_page_can_see(stack: Stack, client: httpx.Client) -> None:
    """A browser's EventSource never hands an SSE comment to the page: the heartbeat must be an event, or the
    app's watchdog would take a quiet stream for a dead one and reconnect it again and again."""
    stream = EventStream(f"{stack.url}/admin/chats/events?follow=1", Path("/"), cookies=client.cookies)
    try:
        stream.start(ready="snapshot")
        beat = stream.wait_for(lambda e: e["type"] == "dancodes.heartbeat", 30)
        assert beat == {"type": "dancodes.heartbeat", "properties": {}}
    finally:
        stream.close()
