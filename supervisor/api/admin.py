"""The /admin routes of the daemon itself: health for everyone; services, processes and config.

The control socket (a unix socket, mode 0600) is the operator's way in and needs no cookie; the
loopback TCP listener, which Caddy proxies, needs the login cookie (`supervisor.api.guard`).
Without the cookie, health says only ok or degraded; through the wall, config may tune settings
but not change what runs (`supervisor.tunables`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
import trio
from quart import Blueprint, Response, abort, request
from quart_schema import document_querystring, document_request, document_response, validate_response

from .. import settings
from ..auth.views import on_control_socket, signed_in_or_operator
from ..config import SETTINGS_FILE
from ..tunables import tunable_through_wall, wall_refusal
from .guard import Json, current_context, require_auth
from .openapi import path_parameters, streams
from .responses import (
    ConfigChange,
    ConfigEntry,
    ConfigView,
    Health,
    Killed,
    LogEntry,
    ProcessList,
    ServiceControlResult,
    ServiceList,
    ServiceLogs,
    can_fail,
    checked,
)
from .schemas import ConfigSetRequest, LogsQuery

if TYPE_CHECKING:
    from ..service import Service

admin = Blueprint("admin", __name__, url_prefix="/admin")
admin.before_request(require_auth)


@admin.get("/health")
@validate_response(Health, 200)
@validate_response(Health, 503)
async def health() -> Json:
    ok, body = current_context().health()
    if not signed_in_or_operator():
        # anyone may ask whether it is up; pids, version, uptime and disk are the owner's business
        body = {"status": body["status"]}
    return body, 200 if ok else 503


@admin.get("/services")
@validate_response(ServiceList)
@can_fail(401)
async def services() -> Json:
    return {"services": [svc.as_json() for svc in current_context().services.values()]}


def _service(name: str) -> Service:
    svc = current_context().services.get(name)
    if svc is None:
        abort(404, f"no service named '{name}'")
    return svc


@admin.post("/services/<name>/<any(start, stop, restart):action>")
@validate_response(ServiceControlResult)
@can_fail(401, 403, 404)
async def control(name: str, action: str) -> Json:
    svc = _service(name)
    if action in ("stop", "restart"):
        await svc.stop()
    if action in ("start", "restart"):
        # answer once the start has played out, so the caller sees running or why not
        await svc.start_and_wait(timeout=min(svc.config.probe.start_timeout, 60.0) + 1.0)
    return {"service": svc.as_json()}


def _int_arg(name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, f"query parameter '{name}' must be an integer, got '{raw[:40]}'")
    if not lo <= value <= hi:
        abort(400, f"query parameter '{name}' must be between {lo} and {hi}")
    return value


@admin.get("/services/<name>/logs")
@document_querystring(LogsQuery)
@document_response(ServiceLogs)
@streams("application/x-ndjson", LogEntry, "with follow: one LogEntry a line, and a blank line now and then")
@can_fail(400, 401, 404)
async def logs(name: str) -> Json | Response:
    """The last `n` lines a service wrote; with `follow`, those and then each new one as it comes."""
    svc = _service(name)
    n = _int_arg("n", 100, lo=0, hi=100_000)
    follow = request.args.get("follow", "0").lower() in {"1", "true", "yes"}
    if not follow:
        # quart-schema cannot validate a route that may stream: its JSON answer is checked here
        return checked(
            {"service": name, "lines": [entry.as_json() for entry in svc.output.tail(n)]}, ServiceLogs
        )

    async def stream() -> AsyncIterator[bytes]:
        with svc.output.follow() as receive:
            for entry in svc.output.tail(n):
                yield json.dumps(entry.as_json()).encode() + b"\n"
            while True:
                # a heartbeat now and then lets a dead reader be noticed
                with trio.move_on_after(15) as idle:
                    entry = await receive.receive()
                if idle.cancelled_caught:
                    yield b"\n"
                    continue
                yield json.dumps(entry.as_json()).encode() + b"\n"

    response = Response(stream(), mimetype="application/x-ndjson")
    response.timeout = None
    return response


@admin.get("/config")
@validate_response(ConfigView)
@can_fail(401)
async def config() -> Json:
    loaded = current_context().loaded
    layers = [loaded.paths.conf_dir / "dancodes.toml", loaded.source, loaded.paths.data_dir / SETTINGS_FILE]
    return {
        "config": msgspec.to_builtins(loaded.config),
        "layers": [str(p) for p in layers if p is not None and p.is_file()],
    }


_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,5}")
_KEY_SCHEMA = {"type": "string", "pattern": f"^{_KEY.pattern}$"}  # in the spec


def _checked_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        abort(400, "a config key is dotted names of letters, digits, '_' or '-', like gc.idle_days")
    return key


@admin.get("/config/<key>")
@path_parameters(key=_KEY_SCHEMA)
@validate_response(ConfigEntry)
@can_fail(400, 401, 404)
async def config_get(key: str) -> Json:
    return {"key": key, "value": settings.lookup(current_context().loaded, _checked_key(key))}


@admin.route("/config/<key>", methods=["PUT", "DELETE"])
@path_parameters(key=_KEY_SCHEMA)
@document_request(ConfigSetRequest)
@validate_response(ConfigChange)
@can_fail(400, 401, 403, 404, 413, 500, 507)
async def config_change(key: str) -> Json:
    _checked_key(key)
    context = current_context()
    if not on_control_socket() and not tunable_through_wall(key, context.loaded.config):
        abort(403, wall_refusal(key))
    value = None
    if request.method == "PUT":
        body = await request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            abort(400, 'the body must be JSON like {"value": "30"} (the value in TOML syntax)')
        value = settings.parse_value(body["value"])
    settings.change(context.loaded, key, value)  # validated against the whole config, then written
    await context.reload()
    effective = settings.lookup(context.loaded, key) if value is not None else None
    # the listeners, the data_dir and the wall are set up at start
    restart = key.split(".")[0] in ("ports", "app", "auth", "agent")  # the agent's user is set up at start
    return {"key": key, "value": effective, "restart_needed": restart}


@admin.get("/processes")
@validate_response(ProcessList)
@can_fail(401)
async def processes() -> Json:
    context = current_context()
    orphans = await trio.to_thread.run_sync(context.orphans)
    return {"orphans": [o.as_json() for o in orphans], "reaped": context.orphans_reaped}


@admin.post("/processes/<int:pid>/kill")
@validate_response(Killed)
@can_fail(401, 403, 404)
async def kill(pid: int) -> Json:
    return {"killed": await current_context().kill(pid)}


@admin.post("/processes/orphans/kill")
@validate_response(Killed)
@can_fail(401, 403)
async def kill_orphans() -> Json:
    return {"killed": await current_context().kill_orphans()}
