"""Request bodies bounded as they arrive, streamed or not, chunked or not.

Quart enforces MAX_CONTENT_LENGTH on a declared Content-Length, and on the bytes it holds at once
while a body is awaited whole. A body that is iterated (the multipart parser does, spooling files
to a temporary file) is emptied after every piece, so its size was never checked: a chunked
`multipart/form-data` POST to /auth/login filled the disk at 130 MB/s. `BoundedBody` counts every
byte received, refuses (413) past the limit whoever reads it and however, and drops what it held.
A route that takes less than the app's limit lowers it for its request with `limit_body`.

`BoundedRequest` is (the base of) the app's request class.
"""

from __future__ import annotations

import trio
from quart import request
from quart_trio.wrappers.request import TrioBody, TrioRequest
from werkzeug.exceptions import RequestEntityTooLarge

#: What the app still reads, and throws away, of a body it answered without (`drain`): closing a
#: socket with unread bytes in it makes the kernel send a reset, which can destroy the answer on its
#: way (Caddy saw "connection reset" instead of a 413). Past this, the connection is closed instead.
DRAIN_BYTES = 1 << 20
DRAIN_SECONDS = 2.0


class BoundedBody(TrioBody):
    """A request body that refuses to grow past its limit, counted over everything received."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._expected = expected_content_length
        self._received = 0
        self._discarded = 0  # bytes that came after a refusal (dropped as they come)
        self._ended = False  # the client sent the last byte and the app kept all of it
        self._client_done = False  # the client sent the last byte
        self._progress = trio.Event()  # set at every piece that comes, replaced after
        if self._must_raise is not None:
            self._refuse()

    def append(self, data: bytes) -> None:
        self._poke()
        if data == b"":
            return
        if self._must_raise is not None:
            self._discarded += len(data)
            return  # nothing more of a refused body is kept
        self._received += len(data)
        if self._max_content_length is not None and self._received > self._max_content_length:
            self._refuse()
            return
        super().append(data)

    def set_complete(self) -> None:
        # called when the client's last piece came (a refusal wakes readers itself, in `_refuse`)
        self._client_done = True
        self._poke()
        if self._must_raise is None:
            self._ended = True
        super().set_complete()

    def _poke(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def drain(self, max_bytes: int = DRAIN_BYTES, seconds: float = DRAIN_SECONDS) -> bool:
        """Take (and drop) the rest of a body the app will not read, within bounds; True when the
        client sent all of it, so the connection can be closed, or reused, cleanly."""
        self._refuse()  # from here on nothing is kept
        start = self._received + self._discarded
        with trio.move_on_after(seconds):
            while not self._client_done and self._received + self._discarded - start <= max_bytes:
                await self._progress.wait()
        return self._client_done

    async def __anext__(self) -> bytes:
        # Quart's own, with the refusal checked after the wait and no checkpoint between that
        # check and taking the data: a refusal while the reader waits is an error, never the
        # end of a shorter body (which a multipart parser would happily parse)
        if self._must_raise is not None:
            raise self._must_raise
        if not self._complete.is_set():
            await self._has_data.wait()
        if self._must_raise is not None:
            raise self._must_raise
        if self._complete.is_set() and not self._data:
            raise StopAsyncIteration
        data = bytes(self._data)
        self._data.clear()
        self._has_data.clear()
        return data

    def limit(self, max_bytes: int) -> None:
        """Lower this body's limit (never raise it); refuse at once if it is already over."""
        if self._max_content_length is None or max_bytes < self._max_content_length:
            self._max_content_length = max_bytes
        if (self._expected is not None and self._expected > max_bytes) or self._received > max_bytes:
            self._refuse()

    @property
    def received_all(self) -> bool:
        """The whole body arrived and was kept: the connection can serve another request."""
        return self._ended

    def _refuse(self) -> None:
        if self._must_raise is None:
            self._must_raise = RequestEntityTooLarge()
        self._data.clear()
        # wake whoever waits for data (they raise); not `set_complete`: the client is not done
        self._complete.set()
        self._has_data.set()


class BoundedRequest(TrioRequest):
    body_class = BoundedBody


def limit_body(max_bytes: int) -> None:
    """For a route that takes less than the app's MAX_CONTENT_LENGTH: this request's body is bounded."""
    body = request.body
    if not isinstance(body, BoundedBody):  # an app built without `install`: a bug, not a client error
        raise TypeError("the app's request class must be a BoundedRequest (supervisor.api.body)")
    body.limit(max_bytes)


def unread_body() -> bool:
    """Does the current request still have body bytes the app has not got (or refused)?"""
    body = request.body
    if isinstance(body, BoundedBody) and body.received_all:
        return False
    declared = request.content_length
    return bool(declared) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


async def drain_unread_body() -> bool:
    """Before an answer to a request whose body was not read: take the rest of it (bounded, dropped).

    True when nothing is left unread, so hypercorn keeps the connection for the next request; False
    when the client sends more than `DRAIN_BYTES` or takes longer than `DRAIN_SECONDS`: hypercorn then
    closes the connection, and the answer should say `Connection: close`.
    """
    if not unread_body():
        return True
    body = request.body
    return isinstance(body, BoundedBody) and await body.drain()
