"""The text of running turns, kept from opencode's deltas: what an app that (re)connects mid-reply is given.

opencode 1.18 stores a text part empty until the part is finished (DESIGN §6): an app that opens,
reloads or reconnects in the middle of a reply and reads the session's messages gets nothing of
what was streamed so far. The daemon follows every instance's events anyway, so it keeps the
deltas of each unfinished part here, and drops them when the part is stored whole
(`message.part.updated` with an end time), when its message or session goes, or when the turn ends.

Bounded: a part keeps at most `PART_LIMIT` characters (its start; `truncated` says so), and all
parts together at most `TOTAL_LIMIT` (the oldest part is dropped first). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PART_LIMIT = 256 * 1024
TOTAL_LIMIT = 4 * 1024 * 1024


@dataclass
class LivePart:
    session_id: str
    message_id: str
    part_id: str
    field: str
    text: str = ""
    truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "sessionID": self.session_id,
            "messageID": self.message_id,
            "partID": self.part_id,
            "field": self.field,
            "text": self.text,
            "truncated": self.truncated,
        }


class LiveText:
    """Unfinished parts by (part id, field), in the order they began."""

    def __init__(self, part_limit: int = PART_LIMIT, total_limit: int = TOTAL_LIMIT) -> None:
        self.part_limit = part_limit
        self.total_limit = total_limit
        self.parts: dict[tuple[str, str], LivePart] = {}
        self.size = 0

    def apply(self, event: dict[str, Any]) -> None:
        """Learn from one of opencode's events (the `payload` of /global/event)."""
        kind, props = event.get("type"), event.get("properties")
        if not isinstance(props, dict):
            return
        if kind == "message.part.delta":
            self._delta(props)
        elif kind == "message.part.updated":
            part = props.get("part")
            if isinstance(part, dict) and isinstance(part.get("time"), dict) and part["time"].get("end"):
                self._drop(lambda p: p.part_id == part.get("id"))
        elif kind == "message.part.removed":
            self._drop(lambda p: p.part_id == props.get("partID"))
        elif kind == "message.removed":
            self._drop(lambda p: p.message_id == props.get("messageID"))
        elif kind in ("session.idle", "session.deleted") or (
            kind == "session.status" and _status(props) == "idle"
        ):
            sid = props.get("sessionID") or (props.get("info") or {}).get("id")
            self._drop(lambda p: p.session_id == sid)

    def of_session(self, session_id: str) -> list[LivePart]:
        return [p for p in self.parts.values() if p.session_id == session_id]

    def snapshot(self) -> list[dict[str, Any]]:
        return [p.as_json() for p in self.parts.values()]

    def _delta(self, props: dict[str, Any]) -> None:
        ids = (props.get("sessionID"), props.get("messageID"), props.get("partID"))
        delta, field = props.get("delta"), props.get("field") or "text"
        if (
            not all(isinstance(i, str) for i in ids)
            or not isinstance(delta, str)
            or not isinstance(field, str)
        ):
            return
        sid, mid, pid = (str(i) for i in ids)
        part = self.parts.get((pid, field))
        if part is None:
            part = self.parts[(pid, field)] = LivePart(sid, mid, pid, field)
        room = self.part_limit - len(part.text)
        if len(delta) > room:
            delta, part.truncated = delta[: max(room, 0)], True
        part.text += delta
        self.size += len(delta)
        while self.size > self.total_limit and len(self.parts) > 1:
            oldest = next(iter(self.parts))
            self.size -= len(self.parts.pop(oldest).text)

    def _drop(self, which: Callable[[LivePart], bool]) -> None:
        for key in [k for k, p in self.parts.items() if which(p)]:
            self.size -= len(self.parts.pop(key).text)


def _status(props: dict[str, Any]) -> str | None:
    status = props.get("status")
    return status.get("type") if isinstance(status, dict) else None
