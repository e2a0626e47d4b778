"""`GET /admin/chats`: every chat (a worktree and its opencode session) with its title and status.

This is what the web app's sidebar polls. It reads the worktree directories' names, opencode's
session list and the daemon's `ChatBoard`, so it boots no opencode instance and runs no git.
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint
from quart_schema import validate_response

from supervisor.api.guard import Json, current_context, require_auth
from supervisor.api.responses import ChatList, can_fail
from supervisor.errors import OpencodeError
from supervisor.opencode import Session

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
