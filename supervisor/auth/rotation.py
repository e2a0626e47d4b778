"""When did the current signing-key rotation start? Remembered across restarts in the data dir.

Setting AUTH_SECRET_PREVIOUS keeps cookies signed with the old key working for
`auth.rotation_window_days` after the daemon first saw that (previous, current) pair. The start is
kept in `<data_dir>/auth-rotation.json` with a fingerprint of the pair: a keyed hash that cannot be
turned back into either secret. A different pair is a new rotation and starts a new window.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from pathlib import Path

import structlog

from ..files import write_whole

log = structlog.get_logger("dancodes.auth")

ROTATION_FILE = "auth-rotation.json"
_LABEL = b"dancodes auth rotation\x00"


def fingerprint(previous: str, current: str) -> str:
    """HMAC-SHA256 keyed by the current secret over a label and the previous one, truncated."""
    return hmac.new(current.encode(), _LABEL + previous.encode(), hashlib.sha256).hexdigest()[:32]


def rotation_started(data_dir: Path, previous: str, current: str, now: float) -> float:
    """The wall-clock time the pair was first seen: read from the file, else `now`, then recorded."""
    path = data_dir / ROTATION_FILE
    mark = fingerprint(previous, current)
    try:
        recorded = json.loads(path.read_text())
        if recorded.get("fingerprint") == mark:
            return float(recorded["since"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # a damaged file costs a fresh window, not the daemon
        log.warning("rotation_file_unreadable", path=str(path), error=str(exc))
    since = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).isoformat(timespec="seconds")
    write_whole(path, json.dumps({"fingerprint": mark, "since": now, "since_utc": since}) + "\n")
    log.info("rotation_started", since=since)
    return now
