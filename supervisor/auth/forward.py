"""The fast forward_auth responder: Caddy's per-request question, answered on a unix socket.

Caddy asks before every request that crosses the wall, so this path must be cheap. On the 2-core
target hypercorn alone costs about 0.8 ms of CPU per request and Quart as much again: through Caddy
that was ~600 checks/s and +1.6 ms per request, against ~4,000/s and +0.3 ms here (`python -m
bench forward_auth` measures both). This responder speaks the small part of HTTP/1.1 that Caddy's
forward_auth uses (a GET without a body, kept alive) on `<run_dir>/auth.sock` (mode 0600: the
daemon's user only, which Caddy runs as) and answers from `AuthWall.check`, the same code as the
app's own /auth/check route.

Anything outside that subset (a body, a bad request line, an oversized head) gets a 4xx and the
connection is closed; only Caddy talks to this socket, so that never costs a real user anything.
"""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path

import structlog
import trio

from supervisor.auth.wall import ALLOW, Answer, AuthWall

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


class _Reject(Exception):
    """A request this responder will not serve: answer `answer`, then close the connection."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


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
    buffer = bytearray()
    with trio.CancelScope() as scope:
        connections.idle_since[scope] = trio.current_time()
        try:
            while True:
                try:
                    head = await _read_head(stream, buffer)
                    if head is None:
                        return
                    data, keep_alive = _respond(wall, head)
                except _Reject as reject:
                    await stream.send_all(_render(reject.answer, close=True))
                    return
                await stream.send_all(data)
                if not keep_alive:
                    return
                connections.idle_since[scope] = trio.current_time()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # Caddy closed its end: nothing to answer
        except Exception:
            # never let one bad connection take the listener (and the daemon's nursery) down
            log.exception("forward_auth_failed")
            return
        finally:
            del connections.idle_since[scope]


async def _read_head(stream: trio.abc.Stream, buffer: bytearray) -> bytes | None:
    """The next request's head (up to the blank line), taken out of `buffer`; None to hang up."""
    end = buffer.find(b"\r\n\r\n")
    while end < 0:
        if len(buffer) > _HEAD_LIMIT:
            raise _Reject(Answer.error(431, "request head too large"))
        data = await stream.receive_some(65536)
        if not data:
            return None
        start = max(0, len(buffer) - 3)
        buffer += data
        end = buffer.find(b"\r\n\r\n", start)
    head = bytes(buffer[:end])
    del buffer[: end + 4]
    return head


def _respond(wall: AuthWall, head: bytes) -> tuple[bytes, bool]:
    """The response bytes for one request head, and whether the connection stays open."""
    text = head.decode("latin-1")
    if "\r" in text.replace("\r\n", "\n"):
        raise _Reject(Answer.error(400, "a bare CR in the request head"))
    request_line, *lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _Reject(Answer.error(400, "malformed request line"))
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name[0] in " \t" or name[-1] in " \t" or "\n" in line:
            raise _Reject(Answer.error(400, "malformed header line"))
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:  # repeated fields joined as HTTP joins them (cookies with '; ')
            headers[key] += ("; " if key == "cookie" else ", ") + value
        else:
            headers[key] = value
    if "transfer-encoding" in headers or headers.get("content-length", "0") != "0":
        raise _Reject(Answer.error(400, "a forward_auth request has no body"))
    keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if target.split("?", 1)[0] != CHECK_PATH:
        answer = Answer.error(404, f"not found: this socket answers {CHECK_PATH} only")
    elif method not in ("GET", "HEAD"):
        answer = Answer.error(405, f"method {method[:20]} not allowed")
    else:
        answer = wall.check(headers)
    if answer is ALLOW and keep_alive:
        return _ALLOW_BYTES, True
    return _render(answer, head_only=method == "HEAD", close=not keep_alive), keep_alive


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
