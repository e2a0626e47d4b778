"""Sending pushes: the sealing child (`seal.py`) encrypts and signs, then each push service gets a POST.

    POST <endpoint>
    Authorization: vapid t=<JWT>, k=<the public key>     RFC 8292
    Content-Encoding: aes128gcm                          RFC 8291: the payload, encrypted for that browser
    TTL: <push.ttl>   Urgency: normal|high   Topic: <the chat>, so a newer push replaces an undelivered one

Push services answer 201 when they took it; 404 or 410 mean the subscription is gone (unsubscribed,
the app removed, the browser reset), and it is dropped. Every send is bounded: the child by
`SEAL_TIMEOUT`, each POST by `push.send_timeout`, what a service answers by `MAX_ANSWER` bytes.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from .. import http
from ..errors import PushUnavailable, SpawnError
from ..reaper import Reaper
from ..spawn import spawn
from .checks import origin_of
from .subscriptions import Subscription

SEAL = Path(__file__).with_name("seal.py")
SEAL_TIMEOUT = 20.0  # seconds: a Python start, the crypto's import, a few ms per push
MAX_OUTPUT = 1 << 20  # bytes the child may print: ~1.5 KB per push, at most push.max_subscriptions
MAX_ERRORS = 4096
MAX_ANSWER = 512  # bytes of a push service's answer kept for the listing
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030: at most 32 base64url characters


@dataclass(frozen=True)
class Outcome:
    """What one push service said about one push."""

    id: str  # the subscription's
    device: str
    status: int | None  # None: no HTTP answer (refused, timed out, not sealed)
    ok: bool
    gone: bool  # 404/410: the subscription no longer exists
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device": self.device,
            "status": self.status,
            "ok": self.ok,
            "dropped": self.gone,
            "message": self.message,
        }


def judge(status: int, answer: str) -> tuple[bool, bool, str]:
    """(delivered, gone, one line) for a push service's HTTP answer."""
    text = " ".join(answer.split())[:200]
    reason = {
        201: "accepted",
        400: "refused: bad request",
        401: "refused: VAPID authorization",
        403: "refused: VAPID key or subject",
        404: "gone: no such subscription",
        410: "gone: unsubscribed",
        413: "refused: payload too large",
        429: "refused: too many pushes, retry later",
    }.get(status, "accepted" if 200 <= status < 300 else "failed")
    message = f"{status} {reason}" + (f": {text}" if text and not 200 <= status < 300 else "")
    return 200 <= status < 300, status in (404, 410), message


@functools.cache
def _child_env() -> dict[str, str]:
    # the child runs with `python -I`: nothing of ours but PATH and a locale is needed
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}


async def run_seal(
    reaper: Reaper, secrets_dir: Path, mode: str, job: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run `seal.py mode secrets_dir` with `job` on its stdin; its JSON answer. PushUnavailable when it
    fails (its one-line reason, which never holds the key) or takes longer than SEAL_TIMEOUT."""
    argv = [sys.executable, "-I", str(SEAL), mode, str(secrets_dir)]
    try:
        child = spawn(reaper, argv, env=_child_env(), stdin=True)
    except SpawnError as exc:
        raise PushUnavailable(f"the push sealer cannot start: {exc}") from None
    assert child.stdin is not None
    out, err = bytearray(), bytearray()

    async def feed() -> None:
        assert child.stdin is not None
        async with child.stdin:
            if job is not None:
                # it may die before reading: its status says why
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await child.stdin.send_all(json.dumps(job).encode())

    async def drain(stream: trio.lowlevel.FdStream, into: bytearray, limit: int) -> None:
        async with stream:
            while chunk := await stream.receive_some(65536):
                into += chunk[: max(0, limit - len(into))]

    with trio.move_on_after(SEAL_TIMEOUT) as timer:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            nursery.start_soon(drain, child.stdout, out, MAX_OUTPUT)
            nursery.start_soon(drain, child.stderr, err, MAX_ERRORS)
        status = await child.wait()
    if timer.cancelled_caught:
        child.signal_group(signal.SIGKILL)
        with trio.CancelScope(shield=True):
            await child.wait()
        raise PushUnavailable(f"the push sealer took longer than {SEAL_TIMEOUT:g} s")
    if not status.success:
        reason = " ".join(err.decode(errors="replace").split())[:300] or status.describe()
        raise PushUnavailable(f"the push sealer failed: {reason}")
    try:
        answer: dict[str, Any] = json.loads(out)
    except ValueError:
        raise PushUnavailable("the push sealer printed something that is not JSON") from None
    return answer


def seal_job(
    payload: bytes, targets: Sequence[Subscription], *, subject: str, expires: int
) -> dict[str, Any]:
    return {
        "subject": subject,
        "expires": expires,
        "payload": base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii"),
        "targets": [
            {"id": t.id, "aud": origin_of(t.endpoint), "p256dh": t.p256dh, "auth": t.auth} for t in targets
        ],
    }


async def post_all(
    sealed: Sequence[dict[str, str]],
    targets: Sequence[Subscription],
    *,
    timeout: float,
    ttl: int,
    urgency: str,
    topic: str | None,
) -> list[Outcome]:
    """POST each sealed push to its subscription's endpoint, at once; what each service said."""
    by_id = {t.id: t for t in targets}
    outcomes: dict[str, Outcome] = {}
    headers = {"Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream"}
    headers |= {"TTL": str(ttl), "Urgency": urgency}
    if topic and _TOPIC.fullmatch(topic):
        headers["Topic"] = topic

    async def post(client: httpx.AsyncClient, item: dict[str, str], target: Subscription) -> None:
        if "error" in item:
            outcomes[target.id] = Outcome(
                target.id, target.device, None, False, False, f"not sealed: {item['error']}"
            )
            return
        body = base64.urlsafe_b64decode(item["body"] + "=" * (-len(item["body"]) % 4))
        try:
            request = client.build_request(
                "POST",
                target.endpoint,
                content=body,
                headers=headers | {"Authorization": item["authorization"]},
            )
            response = await client.send(request, stream=True)
            try:
                answer = b""
                async for chunk in response.aiter_raw():
                    answer += chunk
                    if len(answer) >= MAX_ANSWER:
                        break
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            outcomes[target.id] = Outcome(
                target.id, target.device, None, False, False, f"no answer: {type(exc).__name__}"
            )
            return
        ok, gone, message = judge(response.status_code, answer[:MAX_ANSWER].decode(errors="replace"))
        outcomes[target.id] = Outcome(target.id, target.device, response.status_code, ok, gone, message)

    client = http.client(timeout=timeout, follow_redirects=False)
    async with client, trio.open_nursery() as nursery:
        for item in sealed:
            target = by_id.get(item.get("id", ""))
            if target is not None:
                nursery.start_soon(post, client, item, target)
    missing = [t for t in targets if t.id not in outcomes]
    for t in missing:
        outcomes[t.id] = Outcome(t.id, t.device, None, False, False, "not sealed")
    return [outcomes[t.id] for t in targets]
