"""The /auth routes on the Quart app, and the guard the admin routes call.

    GET  /auth/login    the login page; keeps ?next=
    POST /auth/login    password and next, a form of at most 8 KB: 303 to next with the cookie of a
                        new session, 401, 413, or 429 (a locked-out client's body is not even read)
    GET  /auth/check    forward_auth's question (Caddy asks the fast responder in `forward`; this
                        route gives the same answer for anyone who asks the app)
    POST /auth/logout   ends the cookie's session and clears the cookie, 303 to the login page

The wall itself is `current_app.config["DANCODES_AUTH"]`, an `AuthWall`. Requests on the control
socket (hypercorn gives them no server address) are the operator's and skip the CSRF check. The
app must use `supervisor.api.body.BoundedRequest`, which bounds bodies as they arrive.
"""

from __future__ import annotations

import math

import structlog
from quart import Blueprint, Response, current_app, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from ..api.body import limit_body
from ..errors import DataDirError
from .nextpath import LOGIN_PATH, safe_next
from .origin import HeaderMap, header_map
from .page import HEADERS as PAGE_HEADERS
from .page import login_page
from .throttle import LOCAL, client_key, direct_key
from .wall import NOT_SIGNED_IN, Answer, AuthWall

log = structlog.get_logger("dancodes.auth")

auth = Blueprint("auth", __name__, url_prefix="/auth")

CONFIG_KEY = "DANCODES_AUTH"
_MAX_FORM_BYTES = 8192  # a password and a path; anything bigger is not a login


def current_wall() -> AuthWall:
    wall: AuthWall = current_app.config[CONFIG_KEY]
    return wall


def _headers() -> HeaderMap:
    return header_map(request.headers.items())


def on_control_socket() -> bool:
    """The operator's unix socket (hypercorn gives its requests no server address), not TCP."""
    return request.scope.get("server") is None


def signed_in_or_operator() -> bool:
    """May this request see what only the owner may: the control socket, or a live session's cookie."""
    return on_control_socket() or bool(current_wall().verify(_headers()))


def _client(wall: AuthWall, headers: HeaderMap) -> str:
    """Who the login throttle counts this request against (see `supervisor.auth.throttle`)."""
    if on_control_socket():
        return LOCAL
    if wall.from_proxy(headers):
        return client_key(headers.get("x-forwarded-for"))
    peer = request.scope.get("client")
    return direct_key(peer[0] if peer else None)


def _response(answer: Answer) -> Response:
    return Response(answer.body, status=answer.status, headers=Headers(list(answer.headers)))


def _page(next_path: str, status: int = 200, error: str | None = None) -> Response:
    response = Response(login_page(next_path, error), status=status, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


def _csrf_refused(wall: AuthWall, headers: HeaderMap) -> Response | None:
    if on_control_socket():
        return None
    refusal = wall.csrf_refusal(request.method, headers)
    if refusal is None:
        return None
    log.warning("csrf_refused", method=request.method, path=request.path, reason=refusal)
    return _response(Answer.error(403, f"cross-site request refused: {refusal}"))


def require_auth() -> Response | None:
    """For a blueprint's `before_request`: None to go on, else the refusal to answer with.

    On TCP (Caddy, or anything on loopback) a request needs a valid cookie (401 otherwise) and,
    when it changes state, must come from the site's own origin (403). The control socket passes.
    """
    if on_control_socket():
        return None
    wall = current_wall()
    headers = _headers()
    if not wall.verify(headers):
        return _response(Answer.error(401, NOT_SIGNED_IN))
    return _csrf_refused(wall, headers)


@auth.get("/login")
async def login_form() -> Response:
    return _page(safe_next(request.args.get("next")))


@auth.post("/login")
async def login() -> Response:
    wall = current_wall()
    headers = _headers()
    refused = _csrf_refused(wall, headers)  # login CSRF: nobody signs the phone into another session
    if refused is not None:
        return refused
    client = _client(wall, headers)
    wait = wall.throttle.retry_after(client)
    if wait > 0:  # locked out: the body is not read, the password not even looked at
        seconds = math.ceil(wait)
        log.debug("login_throttled", client=client, retry_after=seconds)
        next_path = safe_next(request.args.get("next"))
        response = _page(next_path, 429, f"too many wrong passwords: try again in {seconds} s")
        response.headers["Retry-After"] = str(seconds)
        return response
    limit_body(_MAX_FORM_BYTES)  # however it is sent: declared, chunked, multipart
    try:
        form = await request.form
    except RequestEntityTooLarge:
        return _response(Answer.error(413, f"a login form is at most {_MAX_FORM_BYTES} bytes"))
    next_path = safe_next(form.get("next"))
    if not wall.secrets.password_matches(form.get("password", "")):
        failure = wall.throttle.failed(client)
        log.warning("login_failed", client=client, failures=failure.failures)
        error = "wrong password"
        if failure.lockout > 0:
            log.warning("login_locked_out", client=client, seconds=failure.lockout)
            error = f"wrong password: wait {math.ceil(failure.lockout)} s before the next try"
        return _page(next_path, 401, error)
    wall.throttle.succeeded(client)
    try:
        value = wall.issue(headers.get("user-agent", ""))
    except DataDirError as exc:
        log.error("login_not_recorded", error=str(exc))
        return _page(next_path, 503, "right password, but the session cannot be saved: see the daemon log")
    log.info("login_ok", client=client)
    response = Response("", status=303, headers={"Location": next_path, "Cache-Control": "no-store"})
    response.set_cookie(
        wall.cookie_name,
        value,
        max_age=wall.max_age,
        path="/",
        secure=wall.secure(headers),
        httponly=True,
        samesite="Lax",  # Strict would drop the cookie when a link in a chat app opens the site
    )
    return response


@auth.get("/check")
async def check() -> Response:
    wall = current_wall()
    headers = _headers()
    return _response(wall.check(headers, _client(wall, headers)))


@auth.post("/logout")
async def logout() -> Response:
    # no CSRF check: a forged logout costs the user one login, and a logout must always work
    wall = current_wall()
    headers = _headers()
    try:
        if wall.end_session(headers):
            log.info("logout")
    except DataDirError as exc:  # ended in memory; only a restart before the next write revives it
        log.error("logout_not_saved", error=str(exc))
    response = Response("", status=303, headers={"Location": LOGIN_PATH, "Cache-Control": "no-store"})
    response.delete_cookie(
        wall.cookie_name, path="/", secure=wall.secure(headers), httponly=True, samesite="Lax"
    )
    return response
