"""What every chat is doing (busy, idle or error, and when it last did something), from opencode's events.

The web app's sidebar shows every chat. Asking opencode about a chat (`GET /session/{id}`,
`/session/status`) boots the instance of the chat's worktree (measured on 1.18.33), so an app
polling its sidebar would keep every worktree's instance alive and undo the idle-instance
janitor. The daemon instead follows opencode's one `/global/event` stream, which boots nothing,
keeps the little it needs per session in memory, and `GET /admin/chats` answers from that.

After the stream comes back (opencode restarted, or the stream went silent), the sessions it last
saw busy are asked of `/session/status` in their own directories: their turns may have died with
the old process. Nothing here is stored: a restarted daemon knows every chat as idle until events
say otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog
import trio

from supervisor.errors import OpencodeError
from supervisor.opencode import OpencodeClient

log = structlog.get_logger("dancodes.chats")

ChatStatus = Literal["busy", "idle", "error"]

#: between attempts to follow opencode's events while it is down or restarting
RETRY_MIN, RETRY_MAX = 0.25, 5.0

#: the user's own stop is not a failure worth an "error" in the sidebar
ABORTED = "MessageAbortedError"


@dataclass
class ChatActivity:
    """One session as the event stream last showed it."""

    status: ChatStatus = "idle"
    error: str | None = None
    updated: float = 0.0  # epoch seconds of the last event about it
    directory: str = ""  # the instance its events came from
    newest_reply: str = ""  # id of its newest assistant message (opencode's ids sort by time)
    seen_reply: str = ""  # the newest one when its latest turn began: older errors are old news

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "updated": self.updated}


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


def _error_text(error: Any) -> str | None:
    """The message of an opencode error object, or None for no error or the user's own abort."""
    if not isinstance(error, dict) or error.get("name") == ABORTED:
        return None
    data = error.get("data")
    message = data.get("message") if isinstance(data, dict) else None
    return str(message or error.get("name") or "error")


class ChatBoard:
    """Status of every session opencode has mentioned since the daemon started, kept current by `run`."""

    def __init__(self, opencode: OpencodeClient) -> None:
        self.opencode = opencode
        self.sessions: dict[str, ChatActivity] = {}
        self.following = False  # the stream is open: what `sessions` says is current
        self.listeners: list[Listener] = []

    def get(self, session_id: str) -> ChatActivity:
        return self.sessions.get(session_id) or ChatActivity()

    def forget_except(self, session_ids: set[str]) -> None:
        """Drop sessions opencode no longer lists, so the board stays as small as the chats are."""
        for sid in [sid for sid in self.sessions if sid not in session_ids]:
            del self.sessions[sid]

    def apply(self, directory: str, event: dict[str, Any]) -> None:
        """Update the board from one event of opencode's bus."""
        kind, props = event.get("type"), event.get("properties")
        if not isinstance(props, dict):
            return
        sid = props.get("sessionID")
        if not isinstance(sid, str):
            return
        if kind == "session.deleted":
            self.sessions.pop(sid, None)
            return
        chat = self.sessions.setdefault(sid, ChatActivity())
        before = chat.status
        self._apply(chat, kind, props, directory)
        self._tell(sid, chat, before)

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
        chat.updated = time.time()
        if directory:
            chat.directory = directory
        if kind == "session.status":
            status = props.get("status")
            state = status.get("type") if isinstance(status, dict) else None
            if state in ("busy", "retry"):
                if chat.status != "busy":
                    chat.seen_reply = chat.newest_reply
                chat.status, chat.error = "busy", None
            elif state == "idle":
                chat.status = "error" if chat.error else "idle"
        elif kind == "session.idle":
            chat.status = "error" if chat.error else "idle"
        elif kind == "session.error":
            chat.error = _error_text(props.get("error")) or chat.error
            if chat.error and chat.status != "busy":
                chat.status = "error"
        elif kind == "message.updated":
            info = props.get("info")
            if isinstance(info, dict) and info.get("role") == "assistant":
                message_id = str(info.get("id") or "")
                chat.newest_reply = max(chat.newest_reply, message_id)
                # opencode sends older messages again during a later turn: their errors are not news
                if message_id > chat.seen_reply:
                    chat.error = _error_text(info.get("error")) or chat.error

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow opencode's events for as long as the daemon runs, reconnecting with a backoff."""
        task_status.started()
        delay = RETRY_MIN
        while True:
            await self._follow_once()
            if self.following:
                delay = RETRY_MIN  # it was up: try again soon
            self.following = False
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _follow_once(self) -> None:
        async with trio.open_nursery() as nursery:

            def connected() -> None:
                self.following = True
                log.info("chat_events_following")
                # events were missed while the stream was down: those turns may be over, or have died
                # with opencode
                busy = {c.directory for c in self.sessions.values() if c.status == "busy" and c.directory}
                if busy:
                    nursery.start_soon(self._recheck, busy)

            try:
                await self.opencode.follow_events(self.apply, on_connected=connected)
            except OpencodeError as exc:
                if self.following:
                    log.info("chat_events_lost", error=str(exc))

    async def _recheck(self, directories: set[str]) -> None:
        for directory in directories:
            asked_at = time.time()
            try:
                running = await self.opencode.busy(directory)
            except OpencodeError:
                continue  # the next reconnect asks again
            for sid, chat in self.sessions.items():
                stale = chat.updated <= asked_at  # an event since the question is newer news
                if chat.directory == directory and chat.status == "busy" and sid not in running and stale:
                    chat.status = "error" if chat.error else "idle"
                    self._tell(sid, chat, "busy")
