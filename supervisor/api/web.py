"""The mobile web app's static files: `/`, files at the build's top level, and `/_app/*`.

The build (`web/dist`) keeps its bundles under `_app/` (Vite's `build.assetsDir`), a folder
opencode's own web UI does not use.

Caddy sends here only `/` and paths that are files of the build, so opencode's own web UI
(`/assets/*`, favicons) keeps working; the checks below hold even for a direct request.

`PUBLIC_FILES` are what makes the app installable: the service worker (at the root, so that its
scope is the whole site), the web manifest and its icons. Browsers fetch them without the cookie,
so Caddy sends exactly these paths here outside the wall (conf/Caddyfile `@installable`); none of
them holds anything private. Each is revalidated on every use (`no-cache`): they keep their names
across deploys, and a browser that kept an old worker would never learn of a new build.
"""

from __future__ import annotations

from quart import Blueprint, Response, abort, current_app, send_from_directory
from quart_schema import hide
from werkzeug.exceptions import NotFound

web = Blueprint("web", __name__)

#: The build's files served without the cookie, by path (conf/Caddyfile lists the same, tested).
PUBLIC_FILES = (
    "/sw.js",
    "/_app/manifest.webmanifest",
    "/_app/icon-192.png",
    "/_app/icon-512.png",
    "/_app/icon-maskable-192.png",
    "/_app/icon-maskable-512.png",
    "/_app/apple-touch-icon.png",
)
_PUBLIC = frozenset(path.removeprefix("/") for path in PUBLIC_FILES)


def _root() -> str:
    return str(current_app.config["DANCODES_WEB_ROOT"])


@web.get("/")
@hide
async def index() -> Response:
    return await _send("index.html")


@web.get("/<name>")
@hide
async def top_level_file(name: str) -> Response:
    return await _send(name)


@web.get("/_app/<path:path>")
@hide
async def asset(path: str) -> Response:
    return await _send(f"_app/{path}")


async def _send(path: str) -> Response:
    try:
        # safe_join inside: nothing outside the build is ever sent
        response = await send_from_directory(_root(), path)
    except (FileNotFoundError, NotFound):
        if path == "index.html":
            abort(404, "the web app is not built: run `make web`")
        abort(404, f"not found: /{path}")
    if path == "index.html" or path in _PUBLIC:
        response.cache_control.no_cache = True  # a deploy must reach the phone on the next load
    return response
