"""Who may call an /admin route: the control socket always, loopback TCP only with the cookie.

Caddy already sent every /admin request through forward_auth; checking the cookie (and the
CSRF origin for a state-changing call) again here means a mistake in the Caddyfile does not
open the admin API.
"""

from __future__ import annotations

from quart import current_app, request

from supervisor.auth import AuthWall


def on_control_socket() -> bool:
    # hypercorn gives a unix socket's connections no server address
    return request.scope.get("server") is None


async def require_auth() -> None:
    if request.endpoint == "admin.health" or on_control_socket():
        return
    wall: AuthWall = current_app.config["DANCODES_AUTH"]
    wall.require_request()
