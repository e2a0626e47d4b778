"""Signed-in sessions, kept on the server so that a logout really ends one.

A cookie names a session: its signed payload is a random id (192 bits). The store keeps, for each
session, only the SHA-256 of that id (a copy of the file opens nothing), when it was created, when
it was last seen and the browser's User-Agent, in `<data_dir>/auth-sessions.json` (mode 0600).
`POST /auth/logout` ends the session its cookie names; `end_all` ("sign out everywhere":
`dancodes-ctl logout --all`, `DELETE /admin/sessions`) ends every one. A session also ends on its own
`max_age` after it was created, like its cookie; at most `max_sessions` are kept, the least
recently seen going first.

Caddy asks about the same cookie on every request, so `alive` is a hash and a dict lookup; the
last-seen time is kept in memory and written at most every `flush_every` seconds. Only the daemon
reads and writes the file, so memory is the truth while it runs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from ..errors import DataDirError
from ..files import read_state, write_whole

log = structlog.get_logger("dancodes.auth")

SESSIONS_FILE = "auth-sessions.json"
ID_LENGTH = 32  # characters of token_urlsafe(24): 192 random bits
HANDLE_LENGTH = 16  # hex characters of the hash that name a session in listings
_ID = re.compile(rf"[A-Za-z0-9_-]{{{ID_LENGTH}}}")
_USER_AGENT_MAX = 200


class SessionRecord(msgspec.Struct):
    """What is kept of one session; times are wall-clock epoch seconds."""

    created: float
    last_seen: float
    user_agent: str = ""


class _SessionsFile(msgspec.Struct):
    sessions: dict[str, SessionRecord]  # the SHA-256 (hex) of the session id -> the record


class Session(msgspec.Struct, frozen=True):
    """One session as listings show it: `id` is a prefix of the hash, never the session id itself."""

    id: str
    created: float
    last_seen: float
    user_agent: str


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def is_session_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


class SessionStore:
    """The live sessions, in memory and in the data dir's file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_age: float,
        clock: Callable[[], float],
        max_sessions: int = 100,
        flush_every: float = 300.0,
    ) -> None:
        self.path = data_dir / SESSIONS_FILE
        self.max_age = max_age
        self.max_sessions = max_sessions
        self.flush_every = flush_every
        self._clock = clock
        self._sessions = self._load()
        self._flushed_at = clock()
        self._dirty = self._prune(self._flushed_at)

    def __len__(self) -> int:
        return len(self._sessions)

    # -- what the wall asks ------------------------------------------------------------------------

    def alive(self, session_id: str) -> bool:
        """Is this session live? Notes that it was seen now."""
        key = session_hash(session_id)
        record = self._sessions.get(key)
        if record is None:
            return False
        now = self._clock()
        if now >= record.created + self.max_age:
            del self._sessions[key]
            self._dirty = True
            return False
        record.last_seen = now
        self._dirty = True
        if now - self._flushed_at >= self.flush_every:
            self.flush()
        return True

    def create(self, user_agent: str) -> str:
        """A new session's id, recorded on disk before it is returned; DataDirError if it cannot be."""
        now = self._clock()
        self._prune(now)
        session_id = new_session_id()
        key = session_hash(session_id)
        self._sessions[key] = SessionRecord(created=now, last_seen=now, user_agent=_clean(user_agent))
        while len(self._sessions) > self.max_sessions:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
            del self._sessions[oldest]
        try:
            self._save()
        except DataDirError:
            self._sessions.pop(key, None)  # a session the file does not hold would not survive a restart
            raise
        return session_id

    def end(self, session_id: str) -> bool:
        """End the session; False when it was not live. DataDirError when the file cannot be written."""
        return self._end({session_hash(session_id)})

    def end_handle(self, handle: str) -> bool:
        """End the session a listing names `handle`."""
        return self._end({key for key in self._sessions if key[:HANDLE_LENGTH] == handle})

    def end_all(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        self._save()
        return count

    def listing(self) -> list[Session]:
        """The live sessions, the most recently seen first."""
        self._prune(self._clock())
        return [
            Session(
                id=handle_of(key),
                created=record.created,
                last_seen=record.last_seen,
                user_agent=record.user_agent,
            )
            for key, record in sorted(self._sessions.items(), key=lambda kv: -kv[1].last_seen)
        ]

    def flush(self) -> None:
        """Write last-seen times now; a failure is logged (the sessions themselves are on disk)."""
        if not self._dirty:
            return
        try:
            self._save()
        except DataDirError as exc:
            self._flushed_at = self._clock()  # retried after flush_every, not on every request
            log.warning("sessions_not_saved", error=str(exc))

    # -- inside ----------------------------------------------------------------------------------

    def _end(self, keys: set[str]) -> bool:
        ended = [key for key in keys if self._sessions.pop(key, None) is not None]
        if ended:
            self._save()  # in memory it has ended already; the error says the file still has it
        return bool(ended)

    def _prune(self, now: float) -> bool:
        expired = [key for key, r in self._sessions.items() if now >= r.created + self.max_age]
        for key in expired:
            del self._sessions[key]
        return bool(expired)

    def _load(self) -> dict[str, SessionRecord]:
        # unreadable: nobody is signed in, which is safe, and a login writes a good file again
        kept = read_state(self.path, _SessionsFile, "sessions_unreadable")
        return kept.sessions if kept is not None else {}

    def _save(self) -> None:
        text = msgspec.json.encode(_SessionsFile(sessions=self._sessions)).decode()
        write_whole(self.path, text + "\n")
        self._flushed_at = self._clock()
        self._dirty = False


def handle_of(key: str) -> str:
    return key[:HANDLE_LENGTH]


def _clean(user_agent: str) -> str:
    # kept for a person to recognise a device; control characters would only garble a listing
    return "".join(c if c.isprintable() else "?" for c in user_agent[:_USER_AGENT_MAX])
