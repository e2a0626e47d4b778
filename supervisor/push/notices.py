"""What a push says when a chat's status changes: the fixed payload the service worker shows.

    {"title": <the chat's title>, "body": <what happened>, "tag": <session id>, "url": "/#chat=<session id>"}

A turn that ended (busy, retrying or waiting, then idle) is "done", with the diff stat when files
changed; a failure says its error; a chat waiting on the user (a permission or a question) says so.
Anything else (a turn starting, an error cleared) pushes nothing. The tag makes a phone replace the
chat's older notification instead of stacking them.

Push services take at most 4096 bytes of encrypted payload (RFC 8291 leaves ~3990 for the text), so
the text is cut to fit, with room to spare.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from ..chats import Transition

Kind = Literal["done", "failed", "waiting"]

MAX_PAYLOAD = 3000  # bytes of JSON
MAX_TITLE = 120  # characters
MAX_BODY = 600
DEFAULT_TITLE = "dancodes chat"
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\u2028\u2029]+")  # newlines stay: a body may have lines


@dataclass(frozen=True)
class Notice:
    title: str
    body: str
    tag: str
    url: str

    def payload(self) -> bytes:
        """The JSON the service worker gets, at most MAX_PAYLOAD bytes (the body is cut to fit)."""
        body = self.body
        while True:
            data = json.dumps(
                {"title": self.title, "body": body, "tag": self.tag, "url": self.url},
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            if len(data) <= MAX_PAYLOAD or not body:
                return data
            body = _cut(body, max(0, len(body) - max(1, len(body) // 8)))


def kind_of(change: Transition) -> Kind | None:
    """Which notice a status change is worth, if any."""
    before, after = str(change.before), str(change.after)  # the lead's statuses may be wider
    if after == "idle" and before in ("busy", "retry", "waiting"):
        return "done"
    if after == "error":
        return "failed"
    if after == "waiting" and before != "waiting":
        return "waiting"
    return None


def diff_stat(files: int, additions: int, deletions: int) -> str:
    """The stat line of a diff: "3 files changed, +12 -4"."""
    return f"{files} file{'' if files == 1 else 's'} changed, +{additions} -{deletions}"


def notice_for(
    kind: Kind, session_id: str, title: str, *, stat: str | None = None, error: str | None = None
) -> Notice:
    if kind == "done":
        body = f"done · {stat}" if stat else "done"
    elif kind == "failed":
        body = f"failed: {error}" if error else "failed"
    else:
        body = "waiting for you: a permission or a question"
    return Notice(
        title=_cut(_clean(title) or DEFAULT_TITLE, MAX_TITLE),
        body=_cut(_clean(body), MAX_BODY),
        tag=session_id,
        url=f"/#chat={session_id}",
    )


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"
