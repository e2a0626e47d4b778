"""Small state files in the data dir (the wall's sessions and tokens, push subscriptions, secrets,
`dancodes init`'s config): written whole or not at all, with their mode from the first byte."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TypeVar

import msgspec
import structlog

from .errors import DataDirError

log = structlog.get_logger("dancodes.files")

T = TypeVar("T")


def write_whole(path: Path, text: str, *, mode: int = 0o600) -> None:
    """tmp + fsync + rename, with `mode` (0600 unless said): a crash leaves the old file or the new one,
    never half of one, and never one readable by others for a moment.

    Raise DataDirError (one line naming the file) when it cannot be written; no temp file is left.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            os.fchmod(fd, mode)  # a stale tmp file keeps its old mode through O_CREAT
            data = text.encode()
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DataDirError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_state(path: Path, kind: type[T], unreadable: str) -> T | None:
    """The JSON file decoded as `kind`; None when it does not exist, or cannot be read or decoded (then
    logged as the event `unreadable`): a store starts empty rather than the daemon not at all."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning(unreadable, path=str(path), error=exc.strerror or str(exc))
        return None
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        log.warning(unreadable, path=str(path), error=str(exc))
        return None
