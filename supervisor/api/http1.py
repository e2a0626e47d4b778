"""hypercorn speaking HTTP/1.1 only: no h2c upgrade, no HTTP/2 with prior knowledge.

hypercorn answers `Upgrade: h2c` (with `HTTP2-Settings`) on a bodiless request with `101 Switching
Protocols` and speaks HTTP/2 from there on. Behind Caddy that was a tunnel: once Caddy had relayed
the 101 it copied bytes both ways, and every later request on the connection reached the app with
headers the client chose, `X-Forwarded-For` included (measured: 200 passwords tried in 0.6 s, the
owner locked out). The app needs nothing but HTTP/1.1 and WebSocket, and hypercorn has no setting
to turn h2c off, so the decision is overridden where it is made: `H11Protocol._check_protocol`,
called on every request head before the app sees it. Here it switches nothing, so an h2c upgrade is
ignored (the request is answered in HTTP/1.1, as RFC 9110 allows) and a `PRI * HTTP/2.0` preface
is just a request with an unknown method and target, which the app refuses. WebSocket upgrades are
decided elsewhere (`_create_stream`) and keep working.

hypercorn's ProtocolWrapper builds the H11Protocol it finds in `hypercorn.protocol`'s namespace, so
that is the name `install` replaces; it checks first that the method it overrides still exists,
so a hypercorn release that moved it stops the daemon at start instead of bringing h2c back.
"""

from __future__ import annotations

import h11
import hypercorn.protocol
from hypercorn.protocol.h11 import H11Protocol

_OVERRIDDEN = "_check_protocol"


class Http11Only(H11Protocol):
    """hypercorn's HTTP/1.1 protocol without its switch to HTTP/2."""

    async def _check_protocol(self, event: h11.Request) -> None:
        return None  # never 101 to h2c, never HTTP/2 by prior knowledge


def install() -> None:
    """Make every connection hypercorn accepts from now on speak HTTP/1.1 only (idempotent)."""
    if not callable(getattr(H11Protocol, _OVERRIDDEN, None)):
        raise RuntimeError(  # noqa: TRY004  # an install that does not fit, not a wrong argument
            f"hypercorn's H11Protocol has no {_OVERRIDDEN}: this hypercorn version cannot be kept "
            "from switching to h2c (see supervisor/api/http1.py)"
        )
    hypercorn.protocol.H11Protocol = Http11Only  # type: ignore[attr-defined]
