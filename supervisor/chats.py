"""What every chat is doing (busy, retrying, waiting on the user, idle or failed), from opencode's events.

The web app's sidebar shows every chat. Asking opencode about a chat (`GET /session/{id}`,
`/session/status`) boots the instance of the chat's worktree (measured on 1.18.33), so an app
polling its sidebar would keep every worktree's instance alive and undo the idle-instance
janitor. The daemon instead follows opencode's one `/global/event` stream, which boots nothing,
keeps the little it needs per session in memory, and `GET /admin/chats` answers from that.

After the stream comes back (opencode restarted, or the stream went silent), the sessions it last
saw busy are asked of `/session/status` in their own directories: their turns may have died with
the old process. One that is no longer running and whose last message is not a finished reply was
cut (opencode crashed, wedged, was restarted for memory or updated): it is `interrupted` until its
next turn begins, and with `resume = "continue"` it is sent "continue" once (a turn cut again is
not continued again before one finishes). The app's streams are told when the daemon loses and
regains opencode's stream (`dancodes.following`), so a page shows that what it sees may be stale.

The sessions in a turn and the interrupted ones are kept in `<data_dir>/chats.json` whenever they
change, so the turns a restart of the daemon itself cut are found too; everything else is memory:
a restarted daemon knows every other chat as idle until events say otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import structlog
import trio

from .errors import OpencodeError
from .files import read_state, write_whole
from .live import LiveText
from .opencode import OpencodeClient

log = structlog.get_logger("dancodes.chats")

ChatStatus = Literal["busy", "retry", "waiting", "idle", "error", "interrupted"]
Resume = Literal["mark", "continue"]  # services.opencode.resume

#: what a cut turn is told with `resume = "continue"`
CONTINUE = "continue"
#: why a turn is marked interrupted
CUT = "opencode stopped before this reply finished (a crash, a restart or an update)"
Turn = Literal["busy", "retry", "idle"]  # what opencode's `session.status` says

#: between attempts to follow opencode's events while it is down or restarting
RETRY_MIN, RETRY_MAX = 0.25, 5.0

#: the user's own stop is not a failure worth an "error" in the sidebar
ABORTED = "MessageAbortedError"

#: opencode's events the app is sent as they come (after a snapshot): what it renders a chat from
RELAYED = frozenset(
    {
        "message.updated",
        "message.removed",
        "message.part.updated",
        "message.part.delta",
        "message.part.removed",
        "session.updated",
        "session.deleted",
        "permission.asked",
        "permission.replied",
        "question.asked",
        "question.replied",
        "question.rejected",
    }
)

#: what a follower of `ChatBoard.feed` may fall behind by before its stream is ended (it resyncs)
FEED_BUFFER = 2000

#: opencode's requests that wait on the user, and the events that end them
ASKED = {"permission.asked": "permission", "question.asked": "question"}
ANSWERED = {"permission.replied", "question.replied", "question.rejected"}


@dataclass
class Retry:
    """A provider call that failed and will be tried again (opencode's `retry` status)."""

    attempt: int
    message: str
    next: float | None  # epoch seconds of the next try

    def as_json(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "message": self.message, "next": self.next}


@dataclass
class ChatActivity:
    """One session as the event stream last showed it: the facts, from which `status` is derived."""

    turn: Turn = "idle"
    error: str | None = None  # why its latest turn failed, once it is over (None while it runs)
    retry: Retry | None = None
    pending: dict[str, str] = field(default_factory=dict)  # request id -> "permission" | "question"
    updated: float = 0.0  # epoch seconds of the last event about it
    last_event: str = ""  # that event's type ("": none since the daemon started)
    since: float = 0.0  # epoch seconds of the last change of `status`
    directory: str = ""  # the instance its events came from
    newest_reply: str = ""  # id of its newest assistant message (opencode's ids sort by time)
    seen_reply: str = ""  # the newest one when its latest turn began: older errors are old news
    interrupted: str | None = None  # why its latest turn was cut, until the next one begins
    resumed: bool = False  # sent "continue" since its last finished turn: not again until one finishes

    @property
    def status(self) -> ChatStatus:
        return chat_status(self.turn, self.error, bool(self.pending), self.interrupted is not None)

    @property
    def waiting(self) -> str | None:
        return next(iter(self.pending.values()), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error if self.status == "error" else None,
            "retry": self.retry.as_json() if self.status == "retry" and self.retry else None,
            "waiting": self.waiting,
            "interrupted": self.interrupted if self.status == "interrupted" else None,
            "since": self.since,
            "updated": self.updated,
        }


def chat_status(turn: Turn, error: str | None, asking: bool, interrupted: bool = False) -> ChatStatus:
    """The one place a chat's status is decided (the app and web push are told this, never derive it).

    A running turn that asks the user something waits on them; a provider that fails is retried;
    a turn cut by opencode going away is interrupted, and one that ended with an error stays an
    error, until the next one begins.
    """
    if turn != "idle":
        return "waiting" if asking else turn
    if interrupted:
        return "interrupted"
    return "error" if error else "idle"


class _Kept(msgspec.Struct):
    """`<data_dir>/chats.json`: the sessions in a turn and the interrupted ones, by id -> directory."""

    running: dict[str, str] = {}
    interrupted: dict[str, str] = {}


@dataclass(frozen=True)
class Transition:
    """A chat's status changed: what listeners (web push) are told, once per change."""

    session_id: str
    directory: str
    before: ChatStatus
    after: ChatStatus
    error: str | None  # the failure's text when `after` is "error"


#: Called in the daemon's event loop for each change; must be quick and must not raise.
Listener = Callable[[Transition], None]


def _following(following: bool) -> dict[str, Any]:
    return {"type": "dancodes.following", "properties": {"following": following}}


def _retry(status: dict[str, Any]) -> Retry:
    attempt, message, at = status.get("attempt"), status.get("message"), status.get("next")
    return Retry(
        attempt=attempt if isinstance(attempt, int) else 0,
        message=str(message or "the provider failed; trying again"),
        next=at / 1000 if isinstance(at, int | float) and at > 0 else None,  # opencode's are milliseconds
    )


def _error_text(error: Any) -> str | None:
    """The message of an opencode error object, or None for no error or the user's own abort."""
    if not isinstance(error, dict) or error.get("name") == ABORTED:
        return None
    data = error.get("data")
    message = data.get("message") if isinstance(data, dict) else None
    return str(message or error.get("name") or "error")


class ChatBoard:
    """Status of every session opencode has mentioned since the daemon started, kept current by `run`."""

    def __init__(
        self,
        opencode: OpencodeClient,
        *,
        record: Path | None = None,
        resume: Callable[[], Resume] = lambda: "mark",
    ) -> None:
        self.opencode = opencode
        self.sessions: dict[str, ChatActivity] = {}
        self._record = record
        self._resume = resume
        self._kept = _Kept()
        if record is not None:
            self._load(record)
        self.following = False  # the stream is open: what `sessions` says is current
        self.listeners: list[Listener] = []
        #: called first with every event as it comes, `(directory, event)`: quick, must not raise
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []
        self.live = LiveText()
        self._feeds: set[trio.MemorySendChannel[dict[str, Any]]] = set()

    def get(self, session_id: str) -> ChatActivity:
        return self.sessions.get(session_id) or ChatActivity()

    def running(self) -> set[str]:
        """The sessions in a turn now (busy, retrying or waiting on the user)."""
        return {sid for sid, chat in self.sessions.items() if chat.turn != "idle"}

    def _load(self, record: Path) -> None:
        """What the last daemon left: its running turns (rechecked on the first connect: a restart of the
        daemon stops opencode, so they were cut unless they finished) and its interrupted chats."""
        kept = read_state(record, _Kept, "chats_record_unreadable")
        if kept is None:
            return
        self._kept = kept
        for sid, directory in kept.running.items():
            self.sessions[sid] = ChatActivity(turn="busy", directory=directory)
        for sid, directory in kept.interrupted.items():
            self.sessions[sid] = ChatActivity(directory=directory, interrupted=CUT)

    def _remember(self) -> None:
        """Keep the running and interrupted sessions on disk when they changed (a small file, whole)."""
        if self._record is None:
            return
        kept = _Kept(
            running={sid: c.directory for sid, c in self.sessions.items() if c.turn != "idle"},
            interrupted={sid: c.directory for sid, c in self.sessions.items() if c.interrupted},
        )
        if kept != self._kept:
            try:
                write_whole(self._record, msgspec.json.encode(kept).decode())
            except OSError as exc:
                log.warning("chats_record_not_saved", error=exc.strerror or str(exc))
                return
            self._kept = kept

    def forget_except(self, session_ids: set[str]) -> None:
        """Drop sessions opencode no longer lists, so the board stays as small as the chats are."""
        for sid in [sid for sid in self.sessions if sid not in session_ids]:
            del self.sessions[sid]
        self._remember()

    def feed(self) -> tuple[dict[str, Any], trio.MemoryReceiveChannel[dict[str, Any]]]:
        """What the app's live stream starts from, and the events after it, taken at one instant (so
        nothing falls between them): every chat's status and the text of every running turn so far.
        Close the channel to stop; a follower that falls `FEED_BUFFER` events behind has it closed
        for it, and starts again from a new snapshot."""
        send, receive = trio.open_memory_channel[dict[str, Any]](FEED_BUFFER)
        self._feeds.add(send)
        return self.snapshot(), receive

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "properties": {
                "following": self.following,
                "chats": [self._status_event(sid, chat)["properties"] for sid, chat in self.sessions.items()],
                "live": self.live.snapshot(),
            },
        }

    def _publish(self, item: dict[str, Any]) -> None:
        for follower in list(self._feeds):
            try:
                follower.send_nowait(item)
            except trio.WouldBlock:
                follower.close()  # too far behind: its stream ends, and it starts over from a snapshot
                self._feeds.discard(follower)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._feeds.discard(follower)

    @staticmethod
    def _status_event(sid: str, chat: ChatActivity) -> dict[str, Any]:
        return {
            "type": "chat.status",
            "properties": {"sessionID": sid, "directory": chat.directory, **chat.as_json()},
        }

    def apply(self, directory: str, event: dict[str, Any]) -> None:
        """Update the board from one event of opencode's bus, and tell the app's streams."""
        for observe in self.observers:
            observe(directory, event)
        kind, props = event.get("type"), event.get("properties")
        if not isinstance(props, dict):
            return
        self.live.apply(event)
        if kind in RELAYED:
            self._publish({"type": kind, "properties": props, "directory": directory})
        sid = props.get("sessionID")
        if sid is None and kind == "session.updated" and isinstance(props.get("info"), dict):
            sid = props["info"].get("id")  # the session itself, when opencode names it there alone
        if not isinstance(sid, str):
            return
        if kind == "session.deleted":
            self.sessions.pop(sid, None)
            self._remember()
            return
        chat = self.sessions.setdefault(sid, ChatActivity())
        before = (chat.status, chat.retry, chat.waiting)
        self._apply(chat, kind, props, directory)
        if chat.status != before[0]:
            chat.since = chat.updated
        if (chat.status, chat.retry, chat.waiting) != before:
            self._publish(self._status_event(sid, chat))
        if chat.status != before[0]:
            self._remember()
        self._tell(sid, chat, before[0])

    def _tell(self, sid: str, chat: ChatActivity, before: ChatStatus) -> None:
        if chat.status == before:
            return
        change = Transition(
            sid, chat.directory, before, chat.status, chat.error if chat.status == "error" else None
        )
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:
                log.exception("chat_listener_failed", session_id=sid)

    def _apply(self, chat: ChatActivity, kind: Any, props: dict[str, Any], directory: str) -> None:
        chat.updated, chat.last_event = time.time(), str(kind)
        if directory:
            chat.directory = directory
        if kind == "session.status":
            status = props.get("status")
            if not isinstance(status, dict):
                return
            state = status.get("type")
            if state in ("busy", "retry"):
                if chat.turn == "idle":  # a turn begins: the last one's error, or its cut, is over
                    chat.seen_reply, chat.error, chat.interrupted = chat.newest_reply, None, None
                chat.turn = "busy" if state == "busy" else "retry"
                chat.retry = _retry(status) if state == "retry" else None
            elif state == "idle":
                self._turn_over(chat)
        elif kind == "session.idle":
            if chat.turn != "idle":
                chat.resumed = False  # a turn finished: a later cut may be continued again
            self._turn_over(chat)
        elif kind == "session.error":
            chat.error = _error_text(props.get("error")) or chat.error
        elif kind in ASKED:
            request = props.get("id")
            if isinstance(request, str):
                chat.pending[request] = ASKED[kind]
        elif kind in ANSWERED:
            chat.pending.pop(str(props.get("requestID")), None)
        elif kind == "message.updated":
            info = props.get("info")
            if isinstance(info, dict) and info.get("role") == "assistant":
                message_id = str(info.get("id") or "")
                chat.newest_reply = max(chat.newest_reply, message_id)
                # opencode sends older messages again during a later turn: their errors are not news
                if message_id > chat.seen_reply:
                    chat.error = _error_text(info.get("error")) or chat.error

    @staticmethod
    def _turn_over(chat: ChatActivity) -> None:
        chat.turn, chat.retry = "idle", None
        chat.pending.clear()  # opencode drops what it asked when the turn ends (or is stopped)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow opencode's events for as long as the daemon runs, reconnecting with a backoff."""
        task_status.started()
        delay = RETRY_MIN
        while True:
            await self._follow_once()
            if self.following:
                delay = RETRY_MIN  # it was up: try again soon
                self.following = False
                self._publish(_following(False))  # the app's pages: what they show may go stale
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _follow_once(self) -> None:
        async with trio.open_nursery() as nursery:

            def connected() -> None:
                self.following = True
                log.info("chat_events_following")
                self._publish(_following(True))
                # events were missed while the stream was down: those turns may be over, or have died
                # with opencode
                busy = {c.directory for c in self.sessions.values() if c.turn != "idle" and c.directory}
                if busy:
                    nursery.start_soon(self._recheck, busy)

            try:
                await self.opencode.follow_events(self.apply, on_connected=connected)
            except OpencodeError as exc:
                if self.following:
                    log.info("chat_events_lost", error=str(exc))

    async def _recheck(self, directories: set[str]) -> None:
        """The turns seen running before the stream came back: over, or cut (then maybe continued)."""
        for directory in directories:
            asked_at = time.time()
            try:
                running = await self.opencode.busy(directory)
            except OpencodeError:
                continue  # the next reconnect asks again
            ended = [
                sid
                for sid, chat in self.sessions.items()
                # an event since the question is newer news
                if chat.directory == directory and chat.turn != "idle" and sid not in running
                and chat.updated <= asked_at
            ]  # fmt: skip
            for sid in ended:
                try:
                    finished = await self.opencode.reply_finished(sid, directory)
                except OpencodeError:
                    finished = True  # cannot tell: do not claim a cut (nor continue it)
                chat = self.sessions.get(sid)
                if chat is None or chat.turn == "idle" or chat.updated > asked_at:
                    continue  # deleted, or news came meanwhile
                before = chat.status
                self._turn_over(chat)
                if not finished:
                    chat.interrupted = CUT
                    log.info("chat_interrupted", session_id=sid, directory=directory)
                chat.since = time.time()
                self.live.apply({"type": "session.idle", "properties": {"sessionID": sid}})
                self._publish(self._status_event(sid, chat))
                self._remember()
                self._tell(sid, chat, before)
                if not finished and self._resume() == "continue" and not chat.resumed:
                    await self._continue(sid, chat)

    async def _continue(self, sid: str, chat: ChatActivity) -> None:
        """`resume = "continue"`: send the cut turn "continue", once until a turn finishes."""
        chat.resumed = True
        try:
            await self.opencode.prompt(sid, chat.directory, CONTINUE)
        except OpencodeError as exc:
            log.warning("chat_continue_failed", session_id=sid, error=str(exc))
            return
        log.info("chat_continued", session_id=sid)
