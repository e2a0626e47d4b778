"""Between the Quart app and hypercorn: the message that ends a response is sent shielded from the
app's cancellation, so hypercorn always finishes the connection's turn that runs inside that send.

Why: hypercorn does the end of a request's life inside the app's last `send` (the body message with
`more_body` false). It marks the stream closed, posts `http.disconnect` to the app, then either
readies the keep-alive connection for the next request or, when the app answered before the whole
request body had arrived (a 401, 403 or 413 decided from the headers), shuts the socket. quart-trio's
receiver task takes that `http.disconnect` and cancels the request's nursery, which holds the very
task still inside `send`: the shutdown was cancelled at its first checkpoint. The connection then
stayed open with no one serving it, and the next request Caddy sent on it was never answered (issue
9: a login POST through Caddy unanswered for 30 s). The keep-alive branch was cut too, before it
re-armed hypercorn's idle timer.

Shielding is bounded: the socket writes inside `send` are already shielded by hypercorn itself, so
this adds only hypercorn's own bookkeeping after them.
"""

from __future__ import annotations

import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope


def _ends_response(message: ASGISendEvent) -> bool:
    return message["type"] == "http.response.body" and not message.get("more_body", False)


def shield_response_end(app: ASGIFramework) -> ASGIFramework:
    """`app` with the send of each HTTP response's last message shielded from cancellation."""

    async def wrapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_end_shielded(message: ASGISendEvent) -> None:
            if _ends_response(message):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await app(scope, receive, send_end_shielded)

    return wrapped
