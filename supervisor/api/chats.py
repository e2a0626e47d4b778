"""`GET /admin/chats`: every chat (a worktree and its opencode session) with its title and status;
`GET /admin/chats/events`: the app's one live stream of every chat's status and running turn.

The list reads the worktree directories' names, opencode's session list and the daemon's
`ChatBoard`, so it boots no opencode instance and runs no git. The stream starts with a snapshot
(statuses and the text of running turns so far, which opencode does not store) and goes on with
the events after it, so an app that opens, reloads, switches back or reconnects mid-reply shows all
of it, and needs one connection for every chat instead of one per worktree.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import trio
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_response, validate_response

from ..errors import OpencodeError
from ..opencode import Session
from .guard import Json, current_context, require_auth
from .openapi import streams
from .responses import ChatEvent, ChatList, ChatSnapshot, can_fail, checked
from .schemas import ChatEventsQuery

chats = Blueprint("chats", __name__, url_prefix="/admin")
chats.before_request(require_auth)


@chats.get("/chats")
@validate_response(ChatList)
@can_fail(401)
async def list_chats() -> Json:
    """Chats newest first. `found` is false for a worktree whose session opencode no longer has;
    `opencode` is false when opencode could not be asked, and titles and `found` are then unknown."""
    context = current_context()
    dirs = await trio.to_thread.run_sync(context.store.worktree_dirs)
    sessions: dict[str, Session] | None
    try:
        sessions = await context.opencode.sessions()
    except OpencodeError:
        sessions = None
    else:
        context.chats.forget_except(set(sessions))
    listed: list[dict[str, Any]] = []
    for repo, session_id, path in dirs:
        session = sessions.get(session_id) if sessions is not None else None
        activity = context.chats.get(session_id)
        listed.append(
            {
                "repo": str(repo),
                "session_id": session_id,
                "path": str(path),
                "title": session.title if session else None,
                "created": session.created if session else None,
                "found": session is not None if sessions is not None else None,
                **activity.as_json(),
                "updated": max(activity.updated, session.updated if session else 0.0),
            }
        )
    listed.sort(key=lambda chat: (chat["created"] or 0, chat["session_id"]), reverse=True)
    return {"chats": listed, "opencode": sessions is not None, "following": context.chats.following}


#: an event this often keeps proxies from closing a quiet stream and lets the app see it is alive: an event,
#: not an SSE comment, which a browser's EventSource never hands to the page
HEARTBEAT_SECONDS = 10.0
HEARTBEAT = {"type": "dancodes.heartbeat", "properties": {}}


@chats.get("/chats/events")
@document_querystring(ChatEventsQuery)
@document_response(ChatSnapshot)
@streams("text/event-stream", ChatEvent, "with follow: the snapshot, then each event, as SSE `data:` lines")
@can_fail(401)
async def chat_events() -> Json | Response:
    """Every chat's status and the text so far of every running turn; with `follow`, then every event."""
    board = current_context().chats
    follow = request.args.get("follow", "0").lower() in {"1", "true", "yes"}
    if not follow:
        return checked(board.snapshot(), ChatSnapshot)
    snapshot, events = board.feed()

    async def stream() -> AsyncIterator[bytes]:
        with events:
            yield _sse(snapshot)
            while True:
                with trio.move_on_after(HEARTBEAT_SECONDS) as quiet:
                    try:
                        event = await events.receive()
                    except trio.EndOfChannel:
                        return  # it fell too far behind: the app reconnects and starts from a snapshot
                if quiet.cancelled_caught:
                    yield _sse(HEARTBEAT)
                    continue
                yield _sse(event)

    response = Response(stream(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.timeout = None
    return response


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
