"""The fast forward_auth responder: Caddy's per-request question, answered on a unix socket.

Caddy asks before every request that crosses the wall, so this path must be cheap. On the 2-core
target hypercorn alone costs about 0.8 ms of CPU per request and Quart as much again: through Caddy
that was ~600 checks/s and +1.6 ms per request, against ~4,000/s and +0.3 ms here (`python -m
bench forward_auth` measures both). This responder parses HTTP/1.1 with h11 (hypercorn's own
parser), serves what Caddy's forward_auth sends (a GET without a body, kept alive) on
`<run_dir>/auth.sock` (mode 0600: the daemon's user only, which Caddy runs as), and answers from
`AuthWall.check`, the same code as the app's own /auth/check route.

Anything else (a body, a malformed or oversized head) gets a 4xx and the connection is closed;
only Caddy talks to this socket, so that never costs a real user anything.
"""

from __future__ import annotations

import os
import socket
import time
from functools import partial
from pathlib import Path

import h11
import structlog
import trio

from .wall import ALLOW, Answer, AuthWall

log = structlog.get_logger("dancodes.auth")

#: The socket's name in the run directory.
FORWARD_AUTH_SOCKET = "auth.sock"
CHECK_PATH = "/auth/check"

_HEAD_LIMIT = 16 * 1024  # Caddy passes the client's headers on; browsers stay far below this
_IDLE_TIMEOUT = 300.0  # seconds without a request; Caddy's pool lets its own go after 2 min
_SWEEP_INTERVAL = 60.0
_REASONS = {
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class _Connections:
    """Open connections and when each last finished a request, so idle ones can be closed.

    One sweep a minute instead of a timeout around every read: a cancel scope per request costs
    about a tenth of this responder's time.
    """

    def __init__(self) -> None:
        self.idle_since: dict[trio.CancelScope, float] = {}

    async def sweep(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(_SWEEP_INTERVAL)
            cutoff = trio.current_time() - _IDLE_TIMEOUT
            for scope, since in list(self.idle_since.items()):
                if since < cutoff:
                    scope.cancel()


async def serve_forward_auth(
    wall: AuthWall, path: Path, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on the unix socket `path` (mode 0600), report started, and serve until cancelled."""
    listener = await _listen(path)
    connections = _Connections()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(connections.sweep)
            task_status.started(path)
            await trio.serve_listeners(partial(_serve_connection, wall, connections), [listener])
    finally:
        path.unlink(missing_ok=True)


async def _listen(path: Path) -> trio.SocketListener:
    path.unlink(missing_ok=True)  # left by a daemon that died; the data_dir lock says it is ours now
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # a fresh socket file is 0755 at worst under the usual umask, and connecting needs write
        # permission: nobody but the owner gets in between bind and chmod
        await sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return trio.SocketListener(sock)


async def _serve_connection(wall: AuthWall, connections: _Connections, stream: trio.abc.Stream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_HEAD_LIMIT)
    with trio.CancelScope() as scope:
        connections.idle_since[scope] = trio.current_time()
        try:
            while True:
                try:
                    request = await _next_request(conn, stream)
                except h11.RemoteProtocolError as exc:
                    # h11 says what was wrong (a malformed line, an oversized head); answer, then close
                    status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
                    await stream.send_all(_render(Answer.error(status, f"bad request: {exc}"), close=True))
                    return
                if request is None:
                    return
                answer, keep_alive = _answer(wall, request)
                if answer is ALLOW and keep_alive:
                    data = _ALLOW_BYTES
                else:
                    data = _render(answer, head_only=request.method == b"HEAD", close=not keep_alive)
                await stream.send_all(data)
                if not keep_alive:
                    return
                # our bytes are written by hand (one send, no per-event overhead): tell h11 the
                # response is over so it parses the next request on this connection
                conn.send(h11.Response(status_code=answer.status, headers=[]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
                connections.idle_since[scope] = trio.current_time()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # Caddy closed its end: nothing to answer
        except Exception:
            # never let one bad connection take the listener (and the daemon's nursery) down
            log.exception("forward_auth_failed")
            return
        finally:
            del connections.idle_since[scope]


async def _next_request(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
    """The next request on the connection, its (empty) body consumed; None when Caddy hangs up."""
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))  # b"": the peer closed
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            raise h11.RemoteProtocolError("a forward_auth request has no body", error_status_hint=400)
        elif isinstance(event, h11.EndOfMessage):
            return request
        else:  # ConnectionClosed, or PAUSED after a protocol switch nobody asked for
            return None


def _answer(wall: AuthWall, request: h11.Request) -> tuple[Answer, bool]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers:  # h11 lowercases names and validates both
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name in headers:  # repeated fields joined as HTTP joins them (cookies with '; ')
            headers[name] += ("; " if name == "cookie" else ", ") + value
        else:
            headers[name] = value
    keep_alive = request.http_version == b"1.1" and "close" not in headers.get("connection", "").lower()
    target = request.target.decode("latin-1")
    if target.split("?", 1)[0] != CHECK_PATH:
        return Answer.error(404, f"not found: this socket answers {CHECK_PATH} only"), keep_alive
    if request.method not in (b"GET", b"HEAD"):
        return Answer.error(405, f"method {request.method[:20].decode('latin-1')} not allowed"), keep_alive
    wall.last_request = time.monotonic()  # the memory ceiling restarts opencode between requests only
    return wall.check(headers), keep_alive


def _render(answer: Answer, *, head_only: bool = False, close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in answer.headers]
    if answer.status != 204:  # a 204 must not carry a Content-Length
        lines.append(f"content-length: {len(answer.body)}")
    if close:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + answer.body


_ALLOW_BYTES = _render(ALLOW)
