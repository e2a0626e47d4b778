"""/admin/sessions: who is signed in, and signing them out.

    GET    /admin/sessions         the live sessions, the caller's own marked `current`
    DELETE /admin/sessions         end every session ("sign out everywhere"; `dancodes-ctl logout --all`)
    DELETE /admin/sessions/<id>    end one, by the `id` a listing shows

A session is listed by a prefix of the hash of its id, never by the id itself: a listing cannot
be turned into a cookie. Like every /admin route: the control socket, or the cookie on TCP.
"""

from __future__ import annotations

import structlog
from quart import Blueprint, abort, request
from quart_schema import validate_response

from ..auth.origin import header_map
from ..auth.sessions import HANDLE_LENGTH, handle_of, session_hash
from .guard import current_context, require_auth
from .responses import SessionList, SessionOut, SessionsEnded, can_fail

log = structlog.get_logger("dancodes.auth")

sessions = Blueprint("sessions", __name__, url_prefix="/admin")
sessions.before_request(require_auth)


@sessions.get("/sessions")
@validate_response(SessionList)
@can_fail(401)
async def list_sessions() -> SessionList:
    wall = current_context().auth
    own = wall.session_of(header_map(request.headers.items()))
    own_handle = handle_of(session_hash(own)) if own else None
    return SessionList(
        sessions=[
            SessionOut(
                id=s.id,
                created=s.created,
                last_seen=s.last_seen,
                user_agent=s.user_agent,
                current=s.id == own_handle,
            )
            for s in wall.sessions.listing()
        ]
    )


@sessions.delete("/sessions")
@validate_response(SessionsEnded)
@can_fail(401, 403)
async def end_all_sessions() -> SessionsEnded:
    ended = current_context().auth.sessions.end_all()
    log.info("sessions_ended", count=ended)
    return SessionsEnded(ended=ended)


@sessions.delete("/sessions/<handle>")
@validate_response(SessionsEnded)
@can_fail(401, 403, 404)
async def end_session(handle: str) -> SessionsEnded:
    if len(handle) != HANDLE_LENGTH or not current_context().auth.sessions.end_handle(handle):
        abort(404, f"no session '{handle[:40]}' (GET /admin/sessions lists them)")
    log.info("sessions_ended", count=1, session=handle)
    return SessionsEnded(ended=1)
