"""Builds the Quart app around a running daemon; every error answers JSON `{"error": "…"}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from quart import Quart, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from supervisor.api.admin import admin
from supervisor.errors import ConfigError, KillRefused, NoSuchProcess, UnknownKey

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = structlog.get_logger("dancodes.api")


def create_app(daemon: Daemon) -> Quart:
    app = QuartTrio("dancodes")
    app.config["DANCODES_DAEMON"] = daemon
    app.config["RESPONSE_TIMEOUT"] = None  # `logs?follow=1` streams for as long as the client reads
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(admin)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[dict[str, Any], int]:
        code = exc.code or 500
        message = exc.description
        if not message or message == type(exc).description:  # werkzeug's paragraph: say it in one line
            message = {
                404: f"not found: {request.path}",
                405: f"method {request.method} not allowed on {request.path}",
            }.get(code, exc.name)
        return {"error": message}, code

    @app.errorhandler(ConfigError)
    async def bad_config(exc: ConfigError) -> tuple[dict[str, Any], int]:
        return {"error": str(exc)}, 404 if isinstance(exc, UnknownKey) else 400

    @app.errorhandler(NoSuchProcess)
    async def no_such_process(exc: NoSuchProcess) -> tuple[dict[str, Any], int]:
        return {"error": str(exc)}, 404

    @app.errorhandler(KillRefused)
    async def kill_refused(exc: KillRefused) -> tuple[dict[str, Any], int]:
        return {"error": str(exc)}, 403

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[dict[str, Any], int]:
        log.exception("request_failed", path=request.path, method=request.method)
        return {"error": "internal error; the daemon log has the details"}, 500

    return app
