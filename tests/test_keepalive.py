"""Every request on a keep-alive connection gets an answer, also after one the app answered before
its body had arrived (issue 9: a login POST through Caddy unanswered for 30 s).

The sequence that hung: Caddy keeps one upstream connection to the app and reuses it. The app refused
a POST (cross-site 403, oversized 413, no cookie 401) from its headers alone, before the rest of the
body came in; quart-trio then cancelled hypercorn while it was closing that connection, so it stayed
open with no one serving it, and the next request Caddy sent on it was never answered (the cause and
the fix: supervisor/api/response_end.py).

A daemon with Caddy and without opencode; every request has a few seconds, bounded in count.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

from supervisor.api.response_end import shield_response_end
from tests.conftest import TEST_PASSWORD, DaemonProc, daemon_env, launch_daemon

# wrong passwords are part of the mix; a lockout would turn the right ones into 429s
CONFIG = """
[services.opencode]
enabled = false
[auth]
free_attempts = 100000
"""
TIMEOUT = 5.0  # seconds for one request; an answer on loopback takes milliseconds
ROUNDS = 50  # of every kind below: 300 sequential requests, 100 of them answered before their body is read
# bigger than Caddy's 4 KB upstream write buffer: the app gets the headers before all of the body
CROSS_SITE_FORM = {"password": "x" * 6000, "next": "/"}  # under the app's 8 KB form limit
OVERSIZED_FORM = {"password": "x" * 16000, "next": "/"}


@dataclass(frozen=True)
class Kind:
    name: str
    form: dict[str, str]
    expected: int
    headers: dict[str, str] = field(default_factory=dict)


KINDS = [
    Kind("cross-site login", CROSS_SITE_FORM, 403, {"Origin": "https://evil.example"}),
    Kind("right password", {"password": TEST_PASSWORD, "next": "/session"}, 303),
    Kind("oversized form", OVERSIZED_FORM, 413),
    Kind("next to another site", {"password": TEST_PASSWORD, "next": "//evil.example/x"}, 303),
    Kind("wrong password", {"password": "nope", "next": "/"}, 401),
    Kind("right password again", {"password": TEST_PASSWORD, "next": "/"}, 303),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProc]:
    root = tmp_path_factory.mktemp("keepalive")
    daemon = launch_daemon(root, CONFIG, wait_healthy=False, env=daemon_env(root))
    try:
        daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")
        yield daemon
    finally:
        daemon.stop()


def test_hundreds_of_sequential_logins_through_caddy_are_all_answered(daemon: DaemonProc) -> None:
    url = f"http://127.0.0.1:{daemon.ports['public']}"
    previous = "none"
    for number in range(ROUNDS * len(KINDS)):
        kind = KINDS[number % len(KINDS)]
        # a new client each time, as each test of test_wall.py: only Caddy's upstream connection is reused
        with httpx.Client(base_url=url, headers={"Origin": url, **kind.headers}, timeout=TIMEOUT) as client:
            try:
                response = client.post("/auth/login", data=kind.form)
            except httpx.TimeoutException:
                pytest.fail(f"login {number} ({kind.name}, after a {previous}) unanswered for {TIMEOUT} s")
        assert response.status_code == kind.expected, (number, kind.name, response.text[:200])
        previous = kind.name


def test_a_connection_answered_before_its_body_arrived_is_closed(daemon: DaemonProc) -> None:
    """The exact sequence, straight to the app's port and with no race: only the headers of a POST, the
    refusal, then the server must close the connection (it did not wait for the body, so the connection
    cannot carry another request). Before the fix that close was cancelled half-way: the connection
    stayed open with no one serving it, and the next request on it was never answered."""
    conn = h11.Connection(h11.CLIENT)
    seen: list[str] = []
    status = 0
    with socket.create_connection(("127.0.0.1", daemon.ports["app"]), timeout=TIMEOUT) as sock:
        headers = [("Host", "127.0.0.1"), ("Content-Type", "application/json"), ("Content-Length", "17")]
        sock.sendall(conn.send(h11.Request(method="POST", target="/admin/gc", headers=headers)))
        while "ConnectionClosed" not in seen:
            event: Any = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(sock.recv(65536))
                except TimeoutError:
                    pytest.fail(f"no close {TIMEOUT} s after {seen}: the connection was left unserved")
            elif event is h11.PAUSED:
                pytest.fail(f"the server sent more than one response: {seen}")
            else:
                seen.append(type(event).__name__)
                if isinstance(event, h11.Response):
                    status = event.status_code
    assert status == 401  # no cookie: refused from the headers alone
    assert seen[0] == "Response"
    assert seen[-2:] == ["EndOfMessage", "ConnectionClosed"]  # the whole refusal, then the close


def _close_wait_sockets(port: int) -> int:
    """Sockets listening side on `port` whose peer has closed them and that are still open (CLOSE_WAIT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            count += int(local.rsplit(":", 1)[1], 16) == port and state == "08"
    return count


def test_a_connection_its_client_closed_is_closed_at_once(daemon: DaemonProc) -> None:
    """Once a request has armed hypercorn's keep-alive timer (it works since the fix above), a
    connection its client then closes must not wait for that timer: hypercorn kept each one open
    for keep_alive_timeout (150 s), a socket and a task per `dancodes-ctl` call."""
    port = daemon.ports["app"]
    for _ in range(20):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            assert client.get("/admin/health").status_code == 200
    daemon.wait_for(lambda: _close_wait_sockets(port) == 0, 10, "the daemon closing the 20 connections")


@pytest.mark.parametrize(("more_body", "sent"), [(False, True), (True, False)])
async def test_only_the_message_that_ends_a_response_is_sent_through_a_cancellation(
    more_body: bool, sent: bool
) -> None:
    """The last body message reaches the server even in a cancelled scope; any other stays cancellable,
    so Quart's response timeout still ends a stalled response."""
    delivered: list[ASGISendEvent] = []

    async def server_send(message: ASGISendEvent) -> None:
        await trio.lowlevel.checkpoint()  # hypercorn's bookkeeping has checkpoints like this one
        delivered.append(message)

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        with trio.CancelScope() as request_scope:
            request_scope.cancel()  # as quart-trio's receiver does when it takes http.disconnect
            await send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def receive() -> Any:
        raise AssertionError("not called")

    scope: Any = {"type": "http"}
    await shield_response_end(app)(scope, receive, server_send)
    assert bool(delivered) is sent
