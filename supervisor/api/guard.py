"""Who may call an /admin route: the control socket always, loopback TCP only with the cookie.

Caddy already sent every /admin request through forward_auth; checking the cookie (and the
CSRF origin for a state-changing call) again here means a mistake in the Caddyfile does not
open the admin API.
"""

from __future__ import annotations

from quart import Response, request

from supervisor.auth import require_auth as require_cookie


async def require_auth() -> Response | None:
    if request.endpoint == "admin.health":
        return None
    # the control socket passes; on TCP a valid cookie (else 401) and, for a state-changing
    # request, the site's own origin (else 403)
    return require_cookie()
