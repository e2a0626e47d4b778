"""/admin/opencode: which opencode runs, and changing it (`supervisor.opencode_versions`).

    GET  /admin/opencode            current, previous, the pin, the versions on disk
    POST /admin/opencode/update     `{"version": "1.18.32" | null}`: install, contract check, switch
    POST /admin/opencode/rollback   back to the previous version (checked again first)

Reading and rolling back: the control socket or the owner's cookie, like every /admin route. A rollback
brings in no new code (the previous version was installed, checked and run here before) and is what a
phone needs when an update broke something. An update is the control socket's alone: it downloads a
package and runs its install script as the daemon's own user, which a cookie (a weaker credential: it
travels, and lives in a browser) must not be able to cause; as `tunables` keeps "what runs" off the wall.
Both answer once the switch is done (an install takes minutes) or refused: `UpdateRefused`, with the old
version still running.
"""

from __future__ import annotations

from quart import Blueprint, abort
from quart_schema import validate_request, validate_response

from ..auth.views import on_control_socket
from .guard import Json, current_context, require_auth
from .responses import OpencodeVersions, can_fail
from .schemas import OpencodeUpdateRequest

opencode = Blueprint("opencode", __name__, url_prefix="/admin")
opencode.before_request(require_auth)


@opencode.get("/opencode")
@validate_response(OpencodeVersions)
@can_fail(401)
async def versions() -> Json:
    return current_context().opencode_versions.describe()


@opencode.post("/opencode/update")
@validate_request(OpencodeUpdateRequest)
@validate_response(OpencodeVersions)
@can_fail(400, 401, 403, 409, 413, 500, 502, 507)
async def update(data: OpencodeUpdateRequest) -> Json:
    """Install the version beside the current one, check it against a copy of the state, switch to it."""
    if not on_control_socket():
        abort(
            403,
            "updating opencode installs and runs new code as the daemon: only `dancodes-ctl opencode update` "
            "on the control socket may (a rollback may be made from here)",
        )
    return await current_context().opencode_versions.update(data.version)


@opencode.post("/opencode/rollback")
@validate_response(OpencodeVersions)
@can_fail(401, 403, 409, 500, 507)
async def rollback() -> Json:
    """Back to the previous version, checked again first; current and previous swap."""
    return await current_context().opencode_versions.rollback()
