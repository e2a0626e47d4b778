"""The daemon's web push: VAPID keys at start, chat status changes in, pushes out.

`Notifier.on_transition` is a `ChatBoard` listener: it runs in the daemon's event loop for each change
of a chat's status, so it only queues the change (bounded: a flood drops with a log line, it never
blocks the board). `run` takes them one by one, in order:

    worth a notice?      a finished turn, a failure, a wait on the user (supervisor.push.notices), of a chat
                         (a session in its own worktree: not a subagent's)
    anyone subscribed?   else nothing to do
    app visible?         then nothing is sent, and `push_suppressed` is logged (supervisor.push.presence)
    title and diff stat  opencode's session list (boots no chat's instance) and the worktree's diff (git,
                         in a thread, as the agent), each allowed to fail: the push goes out without
    send                 sealed by the child, posted to every subscription; `push_sent` with the results

`test` sends a test push at once, visible app or not: the user asked for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import structlog
import trio

from ..chats import Transition
from ..config import PushSettings
from ..errors import DancodesError, PushUnavailable
from ..opencode import OpencodeClient
from ..projects.names import parse_worktree_slug
from ..projects.store import ProjectStore
from ..reaper import Reaper
from . import checks, sender
from .device import clean_label, device_name
from .notices import Kind, Notice, diff_stat, kind_of, notice_for
from .presence import Presence
from .seal import PUBLIC_KEY_FILE
from .subscriptions import Delivery, Subscription, SubscriptionStore

log = structlog.get_logger("dancodes.push")

QUEUE = 100  # status changes waiting to be pushed
JWT_LIFETIME = 12 * 3600  # seconds; RFC 8292 allows at most 24 h
DEFAULT_SUBJECT = "mailto:dancodes@localhost"
TEST_NOTICE = Notice(
    title="dancodes", body="test notification: pushes reach this device", tag="dancodes-test", url="/"
)


def is_chat(directory: str, session_id: str, *worktrees_dirs: Path) -> bool:
    """Is this session a chat of the app: the one whose worktree its events come from? A subagent's session
    (opencode's task tool) runs in its parent's worktree under another id, and is not pushed.
    `worktrees_dirs`: the worktrees' directory as configured, and resolved (opencode may name either)."""
    path = Path(directory)
    if not directory or path.parent not in worktrees_dirs:
        return False
    try:
        return parse_worktree_slug(path.name)[1] == session_id
    except DancodesError:
        return False


def vapid_subject(configured: str, origin: str | None) -> str:
    """The VAPID `sub`: push.subject, else the public origin's site when it is https, else a local mailto:."""
    if configured:
        return configured
    if origin and origin.startswith("https://"):
        host = urlsplit(origin).hostname
        if host:
            return f"https://{host}"
    return DEFAULT_SUBJECT


class Notifier:
    def __init__(
        self,
        *,
        reaper: Reaper,
        secrets_dir: Path,
        push_dir: Path,
        worktrees_dir: Path,
        store: ProjectStore,
        opencode: OpencodeClient,
        settings: Callable[[], PushSettings],
        origin: Callable[[], str | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reaper = reaper
        self.secrets_dir = secrets_dir
        self.worktrees_dirs = (worktrees_dir, worktrees_dir.resolve())
        self.store = store
        self.opencode = opencode
        self.settings = settings
        self.origin = origin
        self._clock = clock
        self.subscriptions = SubscriptionStore(
            push_dir, cap=lambda: settings().max_subscriptions, clock=clock
        )
        self.presence = Presence()
        self.public_key: str | None = None
        self.key_error: str | None = None
        self._keys_lock = trio.Lock()
        self._changes, self._queue = trio.open_memory_channel[Transition](QUEUE)

    # -- what the API asks -------------------------------------------------------------------------

    def suppressed(self) -> bool:
        """Is an app visible now, so that a chat's news would not be pushed?"""
        return self.presence.visible(self.settings().presence_seconds)

    async def key(self) -> str:
        """The VAPID public key (the app's applicationServerKey); PushUnavailable if it cannot be made."""
        return await self._ensure_keys()

    def subscribe(
        self, endpoint: str, p256dh: str, auth: str, label: str | None, user_agent: str
    ) -> tuple[Subscription, bool]:
        """Check and keep a browser's subscription (InvalidSubscription: one line saying what is wrong)."""
        checks.check_endpoint(endpoint)
        checks.check_p256dh(p256dh)
        checks.check_auth(auth)
        device = clean_label(label or "") or device_name(user_agent)
        sub, created = self.subscriptions.add(endpoint, p256dh, auth, device)
        log.info(
            "push_subscribed", id=sub.id, device=sub.device, service=checks.origin_of(endpoint), new=created
        )
        return sub, created

    def unsubscribe(self, sub_id: str) -> Subscription:
        sub = self.subscriptions.remove(sub_id)
        log.info("push_unsubscribed", id=sub.id, device=sub.device)
        return sub

    async def test(self, sub_id: str | None = None) -> list[sender.Outcome]:
        """A test push to one subscription or all, whatever is visible; what each push service said."""
        targets = [self.subscriptions.get(sub_id)] if sub_id else self.subscriptions.listing()
        outcomes = await self.send(TEST_NOTICE, targets, urgency="normal")
        log.info("push_test", results=[o.message for o in outcomes])
        return outcomes

    # -- chat status changes -----------------------------------------------------------------------

    def on_transition(self, change: Transition) -> None:
        """The ChatBoard listener: queue a change worth a notice. Quick, and never raises."""
        if kind_of(change) is None or not is_chat(change.directory, change.session_id, *self.worktrees_dirs):
            return
        try:
            self._changes.send_nowait(change)
        except trio.WouldBlock:
            log.warning("push_dropped", session_id=change.session_id, reason="too many changes queued")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Make the keys if they are missing, then push each queued change, for as long as the daemon runs."""
        task_status.started()
        with contextlib.suppress(PushUnavailable):  # logged; asked again at the next push or key request
            await self._ensure_keys()
        async for change in self._queue:
            try:
                await self._handle(change)
            except Exception:  # a push never takes the daemon down
                log.exception("push_failed", session_id=change.session_id)

    async def _handle(self, change: Transition) -> None:
        kind = kind_of(change)
        if kind is None or not len(self.subscriptions):
            return
        if self.suppressed():
            log.info("push_suppressed", session_id=change.session_id, kind=kind, reason="the app is visible")
            return
        title = await self.opencode.title(change.session_id)
        stat = await self._diff_stat(change.directory) if kind == "done" else None
        notice = notice_for(kind, change.session_id, title, stat=stat, error=change.error)
        outcomes = await self.send(notice, self.subscriptions.listing(), urgency=_urgency(kind))
        log.info(
            "push_sent",
            session_id=change.session_id,
            kind=kind,
            results=[f"{o.device}: {o.message}" for o in outcomes],
        )

    async def _diff_stat(self, directory: str) -> str | None:
        """The chat's change, when files changed."""
        try:
            repo, session_id = parse_worktree_slug(Path(directory).name)
            diff = await trio.to_thread.run_sync(self.store.diff, repo, session_id)
        except (DancodesError, OSError) as exc:
            log.info("push_without_diff", directory=directory, error=str(exc))
            return None
        if not diff.files:
            return None
        return diff_stat(
            len(diff.files), sum(f.additions for f in diff.files), sum(f.deletions for f in diff.files)
        )

    # -- sending -----------------------------------------------------------------------------------

    async def send(
        self, notice: Notice, targets: list[Subscription], *, urgency: str
    ) -> list[sender.Outcome]:
        """Seal `notice` for each target and post it; record each delivery, drop the gone ones."""
        if not targets:
            return []
        settings = self.settings()
        job = sender.seal_job(
            notice.payload(),
            targets,
            subject=vapid_subject(settings.subject, self.origin()),
            expires=int(self._clock()) + JWT_LIFETIME,
        )
        try:
            answer = await sender.run_seal(self.reaper, self.secrets_dir, "seal", job)
            self._learn_key(answer.get("public_key"))
            outcomes = await sender.post_all(
                answer.get("sealed", []),
                targets,
                timeout=settings.send_timeout,
                ttl=settings.ttl,
                urgency=urgency,
                topic=notice.tag,
            )
        except PushUnavailable as exc:
            outcomes = [sender.Outcome(t.id, t.device, None, False, False, str(exc)) for t in targets]
        now = self._clock()
        for outcome in outcomes:
            delivery = Delivery(at=now, status=outcome.status, ok=outcome.ok, message=outcome.message)
            self.subscriptions.record(outcome.id, delivery, drop=outcome.gone)
        return outcomes

    # -- keys --------------------------------------------------------------------------------------

    async def _ensure_keys(self) -> str:
        async with self._keys_lock:
            if self.public_key is None:
                self.public_key = self._read_public_key()
            if self.public_key is None:
                try:
                    answer = await sender.run_seal(self.reaper, self.secrets_dir, "keys")
                except PushUnavailable as exc:
                    self.key_error = str(exc)
                    log.error("push_keys_failed", error=str(exc))
                    raise
                self._learn_key(answer.get("public_key"))
                log.info("push_keys_ready", public_key=self.public_key)
            if self.public_key is None:
                raise PushUnavailable("the VAPID keys could not be made: see the daemon's log")
            return self.public_key

    def _read_public_key(self) -> str | None:
        """The public key kept beside the private one; None unless both are there (then the child makes or
        checks them)."""
        try:
            if not (self.secrets_dir / "vapid-private-key.pem").is_file():
                return None
            text = (self.secrets_dir / PUBLIC_KEY_FILE).read_text().strip()
            checks.check_p256dh(text)
        except (OSError, DancodesError):
            return None
        return text

    def _learn_key(self, key: object) -> None:
        if isinstance(key, str) and key and key != self.public_key:
            if self.public_key is not None:
                log.warning("push_key_changed", public_key=key, detail="browsers must subscribe again")
            self.public_key = key
            self.key_error = None


def _urgency(kind: Kind) -> str:
    return "high" if kind == "waiting" else "normal"
