"""/admin/tokens: the access tokens a laptop's opencode attaches with (`supervisor.auth.tokens`).

    GET    /admin/tokens          every token's name, when it was made and last used (never its value)
    POST   /admin/tokens          make one: `{"name"}` -> `{"name", "token"}`, the value shown this once
    DELETE /admin/tokens/<name>   revoke one: its next request is refused

Like every /admin route: the control socket (`dancodes-ctl token ...`), or the owner's cookie on
TCP with the site's own origin. A token itself never opens /admin: the app checks the cookie.
"""

from __future__ import annotations

import structlog
from quart import Blueprint
from quart_schema import validate_request, validate_response

from .guard import Json, current_context, require_auth
from .responses import TokenCreated, TokenList, TokenOut, TokenRevoked, can_fail
from .schemas import TokenRequest

log = structlog.get_logger("dancodes.auth")

tokens = Blueprint("tokens", __name__, url_prefix="/admin")
tokens.before_request(require_auth)


@tokens.get("/tokens")
@validate_response(TokenList)
@can_fail(401)
async def list_tokens() -> TokenList:
    store = current_context().auth.tokens
    return TokenList(
        tokens=[TokenOut(name=t.name, created=t.created, last_used=t.last_used) for t in store.listing()]
    )


@tokens.post("/tokens")
@validate_request(TokenRequest)
@validate_response(TokenCreated, 201)
@can_fail(400, 401, 403, 409, 413)
async def create_token(data: TokenRequest) -> Json:
    token = current_context().auth.tokens.create(data.name)
    log.info("token_created", name=data.name)
    return {"name": data.name, "token": token}, 201


@tokens.delete("/tokens/<name>")
@validate_response(TokenRevoked)
@can_fail(401, 403, 404)
async def revoke_token(name: str) -> TokenRevoked:
    current_context().auth.tokens.revoke(name)  # a name no token can have is not found either
    log.info("token_revoked", name=name)
    return TokenRevoked(name=name)
