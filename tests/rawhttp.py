"""Raw HTTP/1.1 over a loopback socket, for what an HTTP client will not send: h2c upgrades, the
HTTP/2 preface on an HTTP/1.1 connection, chunked bodies that go on for 64 MB or never end.

Every read has a timeout, so a server that never answers fails the test instead of hanging it.
"""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass

import h11

TIMEOUT = 15.0

H2C_UPGRADE = [
    ("Connection", "Upgrade, HTTP2-Settings"),
    ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),  # max concurrent streams 100, initial window
]
#: What an HTTP/2 client sends first: the connection preface, then an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def request_head(method: str, target: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Upgraded:
    status: int  # the answer to the upgrade request: 101 means the server switched
    after: bytes  # all the server sent after that answer, once it had the HTTP/2 preface


def try_h2c(
    port: int, target: str, headers: dict[str, str], upgrades: tuple[str, ...] = ("h2c",)
) -> Upgraded:
    """GET `target` asking for an h2c upgrade, then speak HTTP/2 on the connection whatever the answer.

    `upgrades` are the Upgrade fields sent, one line each, in order.

    The first answer is parsed as HTTP/1.1 (h11); then the HTTP/2 preface goes out and the write
    side is closed, and everything the server sends until it closes its side is returned: a server
    that switched answers in HTTP/2 frames, one that did not in HTTP/1.1 (or not at all).
    """
    conn = h11.Connection(h11.CLIENT)
    fields = [
        ("Host", f"127.0.0.1:{port}"),
        *H2C_UPGRADE,
        *(("Upgrade", value) for value in upgrades),
        *headers.items(),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(conn.send(h11.Request(method="GET", target=target, headers=fields)))
        sock.sendall(conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.InformationalResponse | h11.Response):
                status = event.status_code
                if status == 101:
                    break
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        after = conn.trailing_data[0]
        try:
            sock.sendall(H2_PREFACE)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                after += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed on us: nothing more came
    return Upgraded(status=status, after=after)


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@dataclass
class Upload:
    sent: int  # body bytes written before the answer came (or the server hung up)
    answer: bytes  # the response's head and what came with it; b"" if none came

    @property
    def status(self) -> int | None:
        if not self.answer.startswith(b"HTTP/1.1 "):
            return None
        return int(self.answer.split(b" ", 2)[1])


def upload(port: int, request_head: bytes, first: bytes, *, total: int, piece: int = 64 << 10) -> Upload:
    """Send a chunked body (`first`, then zeros up to `total` bytes) and stop as soon as an answer
    arrives: how much was sent by then says whether the server waited for all of it."""
    filler = f"{piece:x}\r\n".encode() + b"\0" * piece + b"\r\n"
    answer = b""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request_head + f"{len(first):x}\r\n".encode() + first + b"\r\n")
        sock.setblocking(False)
        try:
            while sent < total and b"\r\n\r\n" not in answer:
                readable, writable, _ = select.select([sock], [sock], [], TIMEOUT)
                if not readable and not writable:
                    break
                if readable:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
                    continue
                sock.setblocking(True)
                sock.sendall(filler)
                sock.setblocking(False)
                sent += piece
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server answered and closed; the answer is read below
        sock.setblocking(True)
        sock.settimeout(TIMEOUT)
        try:
            while not _complete(answer) and (chunk := sock.recv(65536)):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return Upload(sent=sent, answer=answer)


def _complete(answer: bytes) -> bool:
    """The head has come, and as much body as its Content-Length says."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def first_answer(port: int, data: bytes) -> bytes:
    """Send `data` (a head, perhaps the start of a body that never comes); the answer's head."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        return _read_head(sock)
