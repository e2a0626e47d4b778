"""Secrets the daemon makes for itself, once, and keeps in `<data_dir>/secrets` (0700, files 0600).

Today: opencode's server password. The directory belongs to the daemon's user (root in the container);
the agent's user cannot list it, so what is kept here never reaches the agent's tools. A file is written
to a temporary name with mode 0600 from its creation and renamed into place, so a crash never leaves a
half-written or briefly readable secret.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from .errors import DataDirError
from .files import write_whole

OPENCODE_PASSWORD = "opencode-server-password"  # noqa: S105 - a file name, not a password


def load_or_make(directory: Path, name: str, *, nbytes: int = 32) -> str:
    """The secret kept as `directory/name`, made (url-safe random text) if it does not exist yet."""
    path = directory / name
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            value = ""
        if value:
            path.chmod(0o600)
            return value
        value = secrets.token_urlsafe(nbytes)
        write_whole(path, value + "\n")
    except OSError as exc:
        raise DataDirError(f"cannot keep the secret {path}: {exc.strerror or exc}") from None
    return value
