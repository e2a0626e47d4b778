"""The /auth routes on the Quart app, and the guard the admin routes call.

    GET  /auth/login    the login page; keeps ?next=
    POST /auth/login    password and next, form-encoded: 303 to next with the cookie, 401, or 429
    GET  /auth/check    forward_auth's question (Caddy asks the fast responder in `forward`; this
                        route gives the same answer for anyone who asks the app)
    POST /auth/logout   clears the cookie, 303 to the login page

The wall itself is `current_app.config["DANCODES_AUTH"]`, an `AuthWall`. Requests on the control
socket (hypercorn gives them no server address) are the operator's and skip the CSRF check.
"""

from __future__ import annotations

import math

import structlog
from quart import Blueprint, Response, current_app, request
from werkzeug.datastructures import Headers

from supervisor.auth.nextpath import LOGIN_PATH, safe_next
from supervisor.auth.origin import HeaderMap, header_map
from supervisor.auth.page import HEADERS as PAGE_HEADERS
from supervisor.auth.page import login_page
from supervisor.auth.throttle import client_key
from supervisor.auth.wall import NOT_SIGNED_IN, Answer, AuthWall

log = structlog.get_logger("dancodes.auth")

auth = Blueprint("auth", __name__, url_prefix="/auth")

CONFIG_KEY = "DANCODES_AUTH"
_MAX_FORM_BYTES = 8192  # a password and a path; anything bigger is not a login


def current_wall() -> AuthWall:
    wall: AuthWall = current_app.config[CONFIG_KEY]
    return wall


def _headers() -> HeaderMap:
    return header_map(request.headers.items())


def _on_control_socket() -> bool:
    return request.scope.get("server") is None


def _response(answer: Answer) -> Response:
    return Response(answer.body, status=answer.status, headers=Headers(list(answer.headers)))


def _page(next_path: str, status: int = 200, error: str | None = None) -> Response:
    response = Response(login_page(next_path, error), status=status, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


def _csrf_refused(wall: AuthWall, headers: HeaderMap) -> Response | None:
    if _on_control_socket():
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
    if _on_control_socket():
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
    if (request.content_length or 0) > _MAX_FORM_BYTES:
        return _response(Answer.error(413, f"a login form is at most {_MAX_FORM_BYTES} bytes"))
    form = await request.form
    next_path = safe_next(form.get("next"))
    client = client_key(headers.get("x-forwarded-for"))
    wait = wall.throttle.retry_after(client)
    if wait > 0:  # locked out: the password is not even looked at
        seconds = math.ceil(wait)
        log.debug("login_throttled", client=client, retry_after=seconds)
        response = _page(next_path, 429, f"too many wrong passwords: try again in {seconds} s")
        response.headers["Retry-After"] = str(seconds)
        return response
    if not wall.secrets.password_matches(form.get("password", "")):
        failure = wall.throttle.failed(client)
        log.warning("login_failed", client=client, failures=failure.failures)
        error = "wrong password"
        if failure.lockout > 0:
            log.warning("login_locked_out", client=client, seconds=failure.lockout)
            error = f"wrong password: wait {math.ceil(failure.lockout)} s before the next try"
        return _page(next_path, 401, error)
    wall.throttle.succeeded(client)
    log.info("login_ok", client=client)
    response = Response("", status=303, headers={"Location": next_path, "Cache-Control": "no-store"})
    response.set_cookie(
        wall.cookie_name,
        wall.issue(),
        max_age=wall.max_age,
        path="/",
        secure=wall.secure(headers),
        httponly=True,
        samesite="Lax",  # Strict would drop the cookie when a link in a chat app opens the site
    )
    return response


@auth.get("/check")
async def check() -> Response:
    return _response(current_wall().check(_headers()))


@auth.post("/logout")
async def logout() -> Response:
    # no CSRF check: a forged logout costs the user one login, and a logout must always work
    wall = current_wall()
    headers = _headers()
    response = Response("", status=303, headers={"Location": LOGIN_PATH, "Cache-Control": "no-store"})
    response.delete_cookie(
        wall.cookie_name, path="/", secure=wall.secure(headers), httponly=True, samesite="Lax"
    )
    return response
