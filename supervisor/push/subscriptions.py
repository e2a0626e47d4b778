"""The browsers' push subscriptions, kept in `<data_dir>/push/subscriptions.json`.

The directory is the daemon's (0700) and the file 0600: an endpoint with its keys lets anyone who holds
them put a notification on the user's phone, so the agent must not read them. The file is written
whole (tmp + fsync + rename) or not at all; one that cannot be read or parsed is set aside as
`subscriptions.json.damaged` with one log line, and the daemon carries on with none (the phones
subscribe again from the app). Memory is the truth while the daemon runs.

A subscription's id is a hash of its endpoint, so the same browser subscribing again replaces its
entry instead of adding one, and the app can tell which entry is its own. Listings never show the keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from ..errors import DataDirError, TooManySubscriptions, UnknownSubscription
from ..files import write_whole

log = structlog.get_logger("dancodes.push")

SUBSCRIPTIONS_FILE = "subscriptions.json"
ID_LENGTH = 16  # hex characters of the SHA-256 of the endpoint


class Delivery(msgspec.Struct, kw_only=True):
    """How the last push to a subscription went."""

    at: float  # epoch seconds
    status: int | None  # the push service's HTTP status; None when it did not answer
    ok: bool
    message: str  # what it said, or why nothing was sent


class Subscription(msgspec.Struct, kw_only=True):
    id: str
    endpoint: str
    p256dh: str  # base64url, as the browser gave it
    auth: str
    device: str
    created: float  # epoch seconds
    last_delivery: Delivery | None = None


class _File(msgspec.Struct):
    subscriptions: list[Subscription]


def subscription_id(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()[:ID_LENGTH]


class SubscriptionStore:
    """The subscriptions in memory and in their file; at most `cap()` of them."""

    def __init__(
        self, directory: Path, *, cap: Callable[[], int], clock: Callable[[], float] = time.time
    ) -> None:
        self.directory = directory
        self.path = directory / SUBSCRIPTIONS_FILE
        self._cap = cap
        self._clock = clock
        self._items: dict[str, Subscription] = {s.id: s for s in self._load()}

    def __len__(self) -> int:
        return len(self._items)

    def listing(self) -> list[Subscription]:
        """Oldest first."""
        return sorted(self._items.values(), key=lambda s: (s.created, s.id))

    def get(self, sub_id: str) -> Subscription:
        found = self._items.get(sub_id)
        if found is None:
            raise UnknownSubscription(f"no push subscription '{sub_id[:40]}' (GET /admin/push/subscriptions)")
        return found

    def add(self, endpoint: str, p256dh: str, auth: str, device: str) -> tuple[Subscription, bool]:
        """Keep a (checked) subscription; the same endpoint again replaces its keys and device name.
        Returns it and whether it is new. TooManySubscriptions past the cap; DataDirError when the file
        cannot be written (then nothing changed)."""
        sub_id = subscription_id(endpoint)
        old = self._items.get(sub_id)
        if old is None and len(self._items) >= self._cap():
            raise TooManySubscriptions(
                f"already {len(self._items)} push subscriptions, the most allowed (push.max_subscriptions):"
                " delete one first"
            )
        new = Subscription(
            id=sub_id,
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            device=device,
            created=old.created if old else self._clock(),
            last_delivery=old.last_delivery if old else None,
        )
        self._items[sub_id] = new
        try:
            self._save()
        except DataDirError:
            if old is None:
                del self._items[sub_id]
            else:
                self._items[sub_id] = old
            raise
        return new, old is None

    def remove(self, sub_id: str) -> Subscription:
        """Forget one (UnknownSubscription if none has that id). Gone from memory even when the file
        cannot be written: the DataDirError then says that the file still has it."""
        found = self.get(sub_id)
        del self._items[sub_id]
        self._save()
        return found

    def record(self, sub_id: str, delivery: Delivery, *, drop: bool = False) -> None:
        """Note how a push went; `drop` forgets the subscription (its push service says it is gone).
        A file that cannot be written is logged: the push itself is done."""
        found = self._items.get(sub_id)
        if found is None:
            return  # deleted while the push was on its way
        if drop:
            del self._items[sub_id]
            log.info("push_subscription_dropped", id=sub_id, device=found.device, status=delivery.status)
        else:
            found.last_delivery = delivery
        try:
            self._save()
        except DataDirError as exc:
            log.warning("push_subscriptions_not_saved", error=str(exc))

    def _load(self) -> list[Subscription]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return self._damaged(exc.strerror or str(exc))
        try:
            return msgspec.json.decode(data, type=_File).subscriptions
        except msgspec.DecodeError as exc:
            return self._damaged(str(exc))

    def _damaged(self, error: str) -> list[Subscription]:
        aside = self.path.with_name(self.path.name + ".damaged")
        with contextlib.suppress(OSError):
            self.path.replace(aside)  # kept for a look, and the next save does not fail on it
        log.error(
            "push_subscriptions_unreadable",
            path=str(self.path),
            error=error,
            kept_as=str(aside),
            detail="starting with no subscriptions: each phone subscribes again from the app",
        )
        return []

    def _save(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.chmod(0o700)
        except OSError as exc:
            raise DataDirError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        text = msgspec.json.encode(_File(subscriptions=self.listing())).decode()
        write_whole(self.path, text + "\n")
