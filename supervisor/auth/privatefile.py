"""The wall's small state files in the data dir: written whole, mode 0600, or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from supervisor.errors import DataDirError


def write_private(path: Path, text: str) -> None:
    """tmp + fsync + rename, mode 0600: a crash leaves the old file or the new one, never half of one.

    Raise DataDirError (one line naming the file) when it cannot be written; no temp file is left.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a stale tmp file keeps its old mode through O_CREAT
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
