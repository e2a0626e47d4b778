"""What the /admin blueprints share: who may call (the control socket always, loopback TCP only
with the cookie), the daemon they act on (as an `AdminContext`), and the shape of their JSON answers.

Caddy already sent every /admin request through forward_auth; checking the cookie (and the
CSRF origin for a state-changing call) again here means a mistake in the Caddyfile does not
open the admin API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from quart import Response, current_app, request
from quart_schema import RequestSchemaValidationError
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, DataSource

from ..auth import require_auth as require_cookie

if TYPE_CHECKING:
    from ..typing import AdminContext

#: A JSON body, with or without an explicit status.
Json = tuple[dict[str, Any], int] | dict[str, Any]


def current_context() -> AdminContext:
    context: AdminContext = current_app.config["DANCODES_CONTEXT"]
    return context


async def require_auth() -> Response | None:
    if request.endpoint == "admin.health":
        return None
    # the control socket passes; on TCP a valid cookie (else 401) and, for a state-changing
    # request, the site's own origin (else 403)
    refused = require_cookie()
    if refused is None:
        await strict_json_body()  # only now: nobody unauthorized makes the app wait for a body
    return refused


async def strict_json_body() -> None:
    """Hold a JSON body to its schema as the spec states it. quart-schema converts with msgspec's
    `strict=False` (right for query strings, which are all text), which takes `"0"` for a boolean."""
    view = current_app.view_functions.get(request.endpoint or "")
    declared = getattr(view, QUART_SCHEMA_REQUEST_ATTRIBUTE, None)
    if declared is None or declared[1] is not DataSource.JSON:
        return
    data = await request.get_json(silent=True)
    if data is None:
        return  # quart-schema answers a missing or broken body itself
    try:
        msgspec.convert(data, declared[0], strict=True)
    except msgspec.ValidationError as exc:
        raise RequestSchemaValidationError(exc) from None
