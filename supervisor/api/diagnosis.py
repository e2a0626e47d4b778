"""`GET /admin/chats/{session_id}/diagnosis`: "why is this chat stuck?", what the daemon knows of one chat;
`GET /admin/instances`: the opencode instances its events showed.

Read-only, and asks opencode nothing: the chat's status is the `ChatBoard`'s (derived there, never
here), the rest is what `supervisor.recent` kept of opencode's events and of the services' changes.
So looking at a stuck chat boots no instance and cannot wait on a wedged opencode.
"""

from __future__ import annotations

import time

import trio
from quart import Blueprint, abort
from quart_schema import validate_response

from ..projects.names import validate_session_id
from .guard import Json, current_context, require_auth
from .openapi import path_parameters
from .responses import ChatDiagnosis, InstanceList, can_fail
from .schemas import SESSION_ID

diagnosis = Blueprint("diagnosis", __name__, url_prefix="/admin")
diagnosis.before_request(require_auth)


@diagnosis.get("/chats/<session_id>/diagnosis")
@path_parameters(session_id=SESSION_ID)
@validate_response(ChatDiagnosis)
@can_fail(400, 401, 404)
async def chat_diagnosis(session_id: str) -> Json:
    """404 for a session that has no worktree here (a chat is a worktree and its session)."""
    sid = validate_session_id(session_id)
    context = current_context()
    dirs = await trio.to_thread.run_sync(context.store.worktree_dirs)
    found = next(((repo, path) for repo, s, path in dirs if s == sid), None)
    if found is None:
        abort(404, f"no chat with session id '{sid}'")
    repo, path = found
    board, recent = context.chats, context.recent
    activity = board.get(sid)
    service = context.services.get("opencode")
    return {
        "session_id": sid,
        "repo": str(repo),
        "path": str(path),
        "chat": {"sessionID": sid, "directory": activity.directory, **activity.as_json()},
        "last_event": {"type": activity.last_event, "at": activity.updated} if activity.last_event else None,
        "following": board.following,
        "instance": recent.instance(str(path)).as_json(str(path)),
        "opencode": service.as_json() if service is not None else None,
        "opencode_changes": [change.as_json() for change in recent.changes("opencode")],
        "now": time.time(),
    }


@diagnosis.get("/instances")
@validate_response(InstanceList)
@can_fail(401)
async def instances() -> Json:
    context = current_context()
    recent = context.recent
    return {
        "instances": [seen.as_json(directory) for directory, seen in recent.instances.items()],
        "following": context.chats.following,
        "connected_at": recent.connected_at,
    }
