"""`GET /admin/chats/{session_id}/diagnosis` and `GET /admin/instances`, and what is behind them: the chat
board's last event of each session, and `supervisor.recent`.

The rules of `Recent` are checked on opencode's events as they come (shapes recorded from 1.18.33); the
endpoints through Caddy against the real daemon, opencode and the scripted LLM: a chat whose provider
fails is seen retrying with the provider's message, its instance loaded then disposed, and looking at
it boots no instance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.chats import ChatBoard
from supervisor.opencode import OpencodeClient
from supervisor.recent import MAX_DIRECTORIES, Recent
from tests.sse import EventStream
from tests.stack import Stack, running_stack

SID = "ses_0000000000000000000000000a"
DIR = "/data/projects/worktrees/acme__board__" + SID


def event(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, "properties": props}


# -- on events ----------------------------------------------------------------------------------------


def test_the_last_event_of_a_session_is_kept_with_its_time() -> None:
    """Kept by the chat board beside the status (the diagnosis reads it there)."""
    board = ChatBoard(OpencodeClient("http://127.0.0.1:9"))

    def last() -> tuple[str, float] | None:
        chat = board.sessions.get(SID)
        return (chat.last_event, chat.updated) if chat is not None and chat.last_event else None

    assert last() is None
    before = time.time()
    board.apply(DIR, event("session.status", sessionID=SID, status={"type": "busy"}))
    board.apply(DIR, event("message.part.delta", sessionID=SID, delta="x"))
    seen = last()
    assert seen is not None
    assert seen[0] == "message.part.delta"
    assert before <= seen[1] <= time.time()
    # an event of another session, or of none, is not this one's
    board.apply(DIR, event("session.status", sessionID="ses_other", status={"type": "idle"}))
    board.apply("", {"type": "server.heartbeat", "properties": {}})
    assert last() == seen
    # session.updated names its session inside `info`
    board.apply(DIR, event("session.updated", info={"id": SID, "title": "t"}))
    assert last() is not None
    assert last()[0] == "session.updated"  # type: ignore[index]


def test_an_instance_is_loaded_by_its_events_disposed_by_its_dispose_and_unknown_after_a_reconnect() -> None:
    recent = Recent()
    assert recent.instance(DIR).state == "unknown"
    # a boot's own event is the project's, from "global": it says nothing of the directory
    recent.on_event("global", event("project.updated", id="p", worktree="/data/projects/repos/acme__board"))
    assert recent.instances == {}
    recent.on_event(DIR, event("session.status", sessionID=SID, status={"type": "busy"}))
    loaded = recent.instance(DIR)
    assert loaded.state == "loaded"
    assert loaded.last_event is not None
    recent.on_event(DIR, event("server.instance.disposed", directory=DIR))
    disposed = recent.instance(DIR)
    assert disposed.state == "disposed"
    assert disposed.disposed_at is not None
    recent.on_event(DIR, event("session.status", sessionID=SID, status={"type": "idle"}))
    assert recent.instance(DIR).state == "loaded"  # booted again
    recent.on_event("", {"type": "server.connected", "properties": {}})  # opencode may have restarted
    assert recent.instance(DIR).state == "unknown"
    assert recent.connected_at is not None


def test_the_directories_remembered_are_bounded_oldest_first() -> None:
    recent = Recent()
    for i in range(MAX_DIRECTORIES + 5):
        recent.on_event(f"/w/{i}", event("session.idle", sessionID=f"ses_{i}"))
    recent.on_event("/w/5", event("session.idle", sessionID="ses_5"))  # heard of again: newest now
    assert len(recent.instances) == MAX_DIRECTORIES
    assert "/w/0" not in recent.instances
    assert "/w/5" in recent.instances
    assert list(recent.instances)[-1] == "/w/5"


# -- the endpoints, on the real stack ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("diagnosis")) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        yield client


@pytest.fixture(scope="module")
def chat(stack: Stack, client: httpx.Client) -> tuple[str, Path]:
    """A chat of `acme/board` in its worktree: (session id, worktree path)."""
    return stack.chat(client, "acme", "board")


def diagnosis(client: httpx.Client, session_id: str) -> dict[str, Any]:
    answer = client.get(f"/admin/chats/{session_id}/diagnosis")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_an_unknown_or_malformed_session_is_refused_in_one_line(stack: Stack, client: httpx.Client) -> None:
    missing = client.get(f"/admin/chats/{SID}/diagnosis")
    assert missing.status_code == 404
    assert missing.json() == {"error": f"no chat with session id '{SID}'"}
    bad = client.get("/admin/chats/ses__x/diagnosis")
    assert bad.status_code == 400
    assert set(bad.json()) == {"error"}
    assert "\n" not in bad.json()["error"]
    assert "is not a session id" in bad.json()["error"]
    with stack.anonymous() as anonymous:
        assert anonymous.get(f"/admin/chats/{SID}/diagnosis").status_code == 401
        assert anonymous.get("/admin/instances").status_code == 401


def test_a_chat_in_provider_retry_shows_its_attempt_message_instance_and_opencode(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    session_id, path = chat
    stack.llm.reset()
    stack.llm.reply_error(503, "the provider is over capacity")
    stack.llm.reply_error(503, "the provider is over capacity")
    stack.llm.reply_text("back again")
    sent_at = time.time()
    sent = client.post(
        f"/session/{session_id}/prompt_async",
        headers={"x-opencode-directory": str(path)},
        json={"parts": [{"type": "text", "text": "are you there?"}]},
    )
    assert sent.status_code == 204, sent.text

    def retrying() -> dict[str, Any] | None:
        found = diagnosis(client, session_id)
        return found if found["chat"]["status"] == "retry" else None

    seen = stack.daemon.wait_for(retrying, 30, "the chat retrying")
    assert (seen["session_id"], seen["repo"], seen["path"]) == (session_id, "acme/board", str(path))
    assert seen["following"] is True
    assert seen["chat"]["retry"]["attempt"] >= 1
    assert "over capacity" in seen["chat"]["retry"]["message"]
    assert sent_at <= seen["chat"]["since"] <= seen["now"]
    assert seen["last_event"]["type"]
    assert sent_at <= seen["last_event"]["at"] <= seen["now"]
    assert seen["instance"] == {**seen["instance"], "directory": str(path), "state": "loaded"}
    assert seen["opencode"]["name"] == "opencode"
    assert seen["opencode"]["state"] == "running"
    changes = seen["opencode_changes"]
    assert [c["state"] for c in changes][:2] == ["starting", "running"]
    assert changes[-1]["pid"] == seen["opencode"]["pid"]

    done = stack.daemon.wait_for(
        lambda: (d := diagnosis(client, session_id))["chat"]["status"] == "idle" and d, 60, "the chat idle"
    )
    assert done["chat"]["retry"] is None
    assert done["last_event"]["at"] >= seen["last_event"]["at"]


def test_a_disposed_instance_shows_and_looking_boots_none(
    stack: Stack, client: httpx.Client, chat: tuple[str, Path]
) -> None:
    session_id, path = chat
    opencode = f"http://127.0.0.1:{stack.daemon.ports['opencode']}"
    auth = stack.daemon.opencode_auth
    events = EventStream(f"{opencode}/global/event", path, auth=auth).start()
    try:
        headers = {"x-opencode-directory": str(path)}
        disposed = httpx.post(f"{opencode}/instance/dispose", headers=headers, timeout=10, auth=auth)
        assert disposed.status_code == 200, disposed.text
        found = stack.daemon.wait_for(
            lambda: (d := diagnosis(client, session_id))["instance"]["state"] == "disposed" and d,
            10,
            "the instance disposed",
        )
        assert found["instance"]["disposed_at"] <= found["now"]
        listed = client.get("/admin/instances")
        assert listed.status_code == 200, listed.text
        mine = [i for i in listed.json()["instances"] if i["directory"] == str(path)]
        assert [i["state"] for i in mine] == ["disposed"]
        for _ in range(3):
            assert diagnosis(client, session_id)["instance"]["state"] == "disposed"
        # the control: asking the worktree's instance anything boots it, and that shows (so would ours)
        status = client.get("/session/status", headers=headers)
        assert status.status_code == 200, status.text
        events.wait_for(lambda e: e["type"] == "project.updated", 10)
        booted = [i for i, e in enumerate(events.events) if e["type"] == "project.updated"]
        disposals = [i for i, e in enumerate(events.events) if e["type"] == "server.instance.disposed"]
        assert len(booted) == 1, "looking at the diagnosis booted the instance"
        assert disposals
        assert disposals[-1] < booted[0]
    finally:
        events.close()
