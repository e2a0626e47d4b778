"""A chat's status and the text of a running turn, decided once in the daemon, on what opencode really sends.

The sequences in tests/data/events were recorded from opencode 1.18.33 with the scripted LLM
(`python -m tests.record_events`): a turn that streams text around a tool call, a turn the provider
refuses, one retried twice before it answers, and one whose bash call asks the user first. Every
prefix of each is replayed: the app's stream (a snapshot, then the events after it), joined at any
moment, must give the whole text streamed so far, and nothing twice.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import trio

from supervisor.chats import ChatBoard, Transition
from supervisor.live import LiveText
from supervisor.opencode import OpencodeClient

RECORDED = Path(__file__).parent / "data" / "events"


def recording(name: str) -> list[tuple[str, dict[str, Any]]]:
    lines = (RECORDED / f"{name}.jsonl").read_text().splitlines()
    return [(item["directory"], item["payload"]) for item in map(json.loads, lines)]


def session_of(events: list[tuple[str, dict[str, Any]]]) -> str:
    sid = next(e["properties"]["sessionID"] for _, e in events if e["type"] == "session.status")
    assert isinstance(sid, str)
    return sid


def replay(name: str) -> tuple[ChatBoard, list[Transition], list[str]]:
    """The board after the whole recording, the transitions it told, and each status it passed through."""
    board = ChatBoard(OpencodeClient("http://127.0.0.1:9"))
    told: list[Transition] = []
    board.listeners.append(told.append)
    events = recording(name)
    sid = session_of(events)
    seen: list[str] = []
    for directory, event in events:
        board.apply(directory, event)
        status = board.get(sid).status
        if not seen or seen[-1] != status:
            seen.append(status)
    return board, told, seen


@pytest.mark.parametrize(
    ("name", "statuses"),
    [
        ("turn", ["idle", "busy", "idle"]),
        ("failed", ["idle", "busy", "error"]),
        ("retry", ["idle", "busy", "retry", "busy", "retry", "busy", "idle"]),
        ("permission", ["idle", "busy", "waiting", "busy", "idle"]),
    ],
)
def test_the_status_follows_what_opencode_sends(name: str, statuses: list[str]) -> None:
    board, told, seen = replay(name)
    assert seen == statuses
    assert [(t.before, t.after) for t in told] == list(itertools.pairwise(statuses))
    assert board.running() == set()


def test_a_failed_turn_says_why_and_the_next_turn_clears_it() -> None:
    board, told, _ = replay("failed")
    sid = session_of(recording("failed"))
    assert board.get(sid).as_json()["error"] == told[-1].error
    assert "refuses this one" in (told[-1].error or "")
    board.apply(
        "/wt", {"type": "session.status", "properties": {"sessionID": sid, "status": {"type": "busy"}}}
    )
    assert (board.get(sid).status, board.get(sid).error) == ("busy", None)


def test_a_retry_carries_the_attempt_and_the_providers_message() -> None:
    board = ChatBoard(OpencodeClient("http://127.0.0.1:9"))
    attempts = []
    for directory, event in recording("retry"):
        board.apply(directory, event)
        chat = next(iter(board.sessions.values()), None)
        if chat is not None and chat.status == "retry":
            attempts.append(chat.as_json()["retry"])
    assert [a["attempt"] for a in attempts[:1]] == [1]
    assert {a["message"] for a in attempts} == {"overloaded, try again", "still overloaded"}
    assert all(a["next"] > 1_700_000_000 for a in attempts)  # seconds, not opencode's milliseconds


def test_waiting_names_what_the_agent_asks() -> None:
    board = ChatBoard(OpencodeClient("http://127.0.0.1:9"))
    waiting = set()
    for directory, event in recording("permission"):
        board.apply(directory, event)
        for chat in board.sessions.values():
            waiting.add(chat.as_json()["waiting"])
    assert waiting == {None, "permission"}


def finished_texts(events: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Each text part as opencode stored it once finished."""
    done: dict[str, str] = {}
    for _, event in events:
        part = event["properties"].get("part") if event["type"] == "message.part.updated" else None
        if part and part.get("type") == "text" and part.get("time", {}).get("end"):
            done[part["id"]] = part["text"]
    return done


def truth(events: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Each text part as streamed up to the end of `events`: its deltas, or its stored text once finished."""
    text: dict[str, str] = {}
    for _, event in events:
        props = event["properties"]
        if event["type"] == "message.part.delta" and props.get("field", "text") == "text":
            text[props["partID"]] = text.get(props["partID"], "") + props["delta"]
        part = props.get("part") if event["type"] == "message.part.updated" else None
        if part and part.get("type") == "text" and part.get("time", {}).get("end"):
            text[part["id"]] = part["text"]
    return {k: v for k, v in text.items() if v}


@pytest.mark.parametrize("name", ["turn", "retry", "permission"])
def test_joining_at_any_moment_gives_every_chunk_once(name: str) -> None:
    """Joined at any point, what opencode stores (a part's text once it is finished), the snapshot's text
    of the unfinished parts and the relayed events after it show, after every event, exactly the text
    streamed so far: nothing missing, nothing twice."""
    events = recording(name)
    assert any(e["type"] == "message.part.delta" for _, e in events), "the recording streams text"
    for cut in range(len(events) + 1):
        board = ChatBoard(OpencodeClient("http://127.0.0.1:9"))
        for directory, event in events[:cut]:
            board.apply(directory, event)
        snapshot, feed = board.feed()
        shown = finished_texts(events[:cut])  # the app's GET of the session's messages
        shown |= {p["partID"]: p["text"] for p in snapshot["properties"]["live"] if p["field"] == "text"}
        assert shown == truth(events[:cut]), (name, cut)
        for at in range(cut, len(events)):
            board.apply(*events[at])
            while True:
                try:
                    item = feed.receive_nowait()
                except trio.WouldBlock:
                    break
                props = item["properties"]
                if item["type"] == "message.part.delta" and props.get("field", "text") == "text":
                    shown[props["partID"]] = shown.get(props["partID"], "") + props["delta"]
                part = props.get("part") if item["type"] == "message.part.updated" else None
                if part and part.get("type") == "text" and part.get("time", {}).get("end"):
                    shown[part["id"]] = part["text"]
            assert shown == truth(events[: at + 1]), (name, cut, at)
        assert board.live.parts == {}  # the turn is over: nothing kept


def test_the_live_text_is_bounded() -> None:
    live = LiveText(part_limit=10, total_limit=25)

    def delta(part: str, text: str) -> dict[str, Any]:
        props = {"sessionID": "s", "messageID": "m", "partID": part, "field": "text", "delta": text}
        return {"type": "message.part.delta", "properties": props}

    live.apply(delta("a", "0123456789abc"))
    assert (live.parts[("a", "text")].text, live.parts[("a", "text")].truncated) == ("0123456789", True)
    live.apply(delta("b", "x" * 10))
    live.apply(delta("c", "y" * 10))  # 30 > 25: the oldest part goes
    assert set(live.parts) == {("b", "text"), ("c", "text")}
    assert live.size == 20
    live.apply({"type": "session.idle", "properties": {"sessionID": "s"}})
    assert (live.parts, live.size) == ({}, 0)


def test_a_follower_that_falls_behind_is_ended_not_fed_gaps() -> None:
    board = ChatBoard(OpencodeClient("http://127.0.0.1:9"))
    _, feed = board.feed()
    props = {"sessionID": "s", "messageID": "m", "partID": "p", "field": "text", "delta": "x"}
    for _ in range(3000):
        board.apply("/wt", {"type": "message.part.delta", "properties": props})
    received = 0
    while True:
        try:
            feed.receive_nowait()
        except trio.EndOfChannel:
            break
        received += 1
    assert 0 < received < 3000  # what it had, then the end: it resyncs from a new snapshot
