"""/admin/push: web push subscriptions, the app's presence, test pushes and the VAPID key.

    GET    /admin/push/key                   the VAPID public key (the app's applicationServerKey)
    GET    /admin/push/subscriptions         every subscribed browser: device, created, last delivery
    POST   /admin/push/subscriptions         the browser's PushSubscription.toJSON() (+ a device name)
    DELETE /admin/push/subscriptions/<id>    forget one
    POST   /admin/push/test                  a test push to all (or `id`): what each push service said
    POST   /admin/push/presence              the app is in front (every ~20 s) or went to the back

Keys are never listed. Like every /admin route: the control socket, or the cookie on TCP.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request
from quart_schema import validate_request, validate_response

from ..push.checks import origin_of
from ..push.subscriptions import Subscription
from .guard import Json, current_context, require_auth
from .openapi import path_parameters
from .responses import (
    PushKey,
    PushPresence,
    PushResults,
    PushSubscribed,
    PushSubscriptionList,
    PushUnsubscribed,
    can_fail,
)
from .schemas import PresenceRequest, PushSubscriptionRequest, PushTestRequest

push = Blueprint("push", __name__, url_prefix="/admin/push")
push.before_request(require_auth)

_ID = {"type": "string", "pattern": "^[0-9a-f]{16}$"}


def _info(sub: Subscription) -> dict[str, Any]:
    delivery = sub.last_delivery
    return {
        "id": sub.id,
        "device": sub.device,
        "push_service": origin_of(sub.endpoint),
        "created": sub.created,
        "last_delivery": None
        if delivery is None
        else {"at": delivery.at, "status": delivery.status, "ok": delivery.ok, "message": delivery.message},
    }


@push.get("/key")
@validate_response(PushKey)
@can_fail(401, 503)
async def key() -> Json:
    """Made on the daemon's first start; 503 when it could not be made (the log says why)."""
    return {"public_key": await current_context().notifier.key()}


@push.get("/subscriptions")
@validate_response(PushSubscriptionList)
@can_fail(401)
async def list_subscriptions() -> Json:
    context = current_context()
    notifier = context.notifier
    return {
        "subscriptions": [_info(s) for s in notifier.subscriptions.listing()],
        "suppressed": notifier.suppressed(),
        "max_subscriptions": context.loaded.config.push.max_subscriptions,
    }


@push.post("/subscriptions")
@validate_request(PushSubscriptionRequest)
@validate_response(PushSubscribed, 200)
@validate_response(PushSubscribed, 201)
@can_fail(400, 401, 403, 409, 413, 503)
async def subscribe(data: PushSubscriptionRequest) -> Json:
    """Keep the browser's subscription (201), or replace the one of the same endpoint (200)."""
    sub, created = current_context().notifier.subscribe(
        data.endpoint,
        data.keys.p256dh,
        data.keys.auth,
        data.device,
        request.headers.get("User-Agent", ""),
    )
    return {"subscription": _info(sub), "created": created}, 201 if created else 200


@push.delete("/subscriptions/<sub_id>")
@path_parameters(sub_id=_ID)
@validate_response(PushUnsubscribed)
@can_fail(401, 403, 404, 503)
async def unsubscribe(sub_id: str) -> Json:
    return {"deleted": current_context().notifier.unsubscribe(sub_id).id}


@push.post("/test")
@validate_request(PushTestRequest)
@validate_response(PushResults)
@can_fail(400, 401, 403, 404, 413)
async def test(data: PushTestRequest) -> Json:
    """Push a test notification now, visible app or not; each push service's answer. A 404 or 410 from
    one drops that subscription."""
    outcomes = await current_context().notifier.test(data.id)
    return {"results": [o.as_json() for o in outcomes]}


@push.post("/presence")
@validate_request(PresenceRequest)
@validate_response(PushPresence)
@can_fail(400, 401, 403, 413)
async def presence(data: PresenceRequest) -> Json:
    notifier = current_context().notifier
    notifier.presence.beat(data.client, data.visible)
    return {"suppressed": notifier.suppressed()}
