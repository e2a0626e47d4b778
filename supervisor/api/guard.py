"""What the /admin blueprints share: who may call (the control socket always, loopback TCP only
with the cookie), the daemon they act on, and the shape of their JSON answers.

Caddy already sent every /admin request through forward_auth; checking the cookie (and the
CSRF origin for a state-changing call) again here means a mistake in the Caddyfile does not
open the admin API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Response, current_app, request

from supervisor.auth import require_auth as require_cookie

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

#: A JSON body, with or without an explicit status.
Json = tuple[dict[str, Any], int] | dict[str, Any]


def current_daemon() -> Daemon:
    daemon: Daemon = current_app.config["DANCODES_DAEMON"]
    return daemon


async def require_auth() -> Response | None:
    if request.endpoint == "admin.health":
        return None
    # the control socket passes; on TCP a valid cookie (else 401) and, for a state-changing
    # request, the site's own origin (else 403)
    return require_cookie()
