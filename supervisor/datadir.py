"""The data directory: made usable at start, and held by one daemon at a time.

Two daemons on one data_dir would run two opencodes on one SQLite database and prune each other's
worktrees, so the daemon holds an exclusive `flock` on `run/dancodes.lock` for its whole life. The
kernel drops the lock when the process dies, however it dies, so a crash never leaves it stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from .config import Paths
from .errors import DataDirError


def prepare_data_dir(paths: Paths) -> None:
    """Create the data, run, repos and worktrees directories; raise DataDirError unless they are usable."""
    try:
        paths.data_dir.mkdir(parents=True, exist_ok=True)
        paths.run_dir.mkdir(mode=0o700, exist_ok=True)
        paths.run_dir.chmod(0o700)
        paths.repos_dir.mkdir(parents=True, exist_ok=True)
        paths.worktrees_dir.mkdir(parents=True, exist_ok=True)
        probe = paths.data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DataDirError(f"data_dir {paths.data_dir} is not usable: {reason}") from None


def lock_data_dir(paths: Paths) -> int:
    """Take the data_dir's lock for this process; return the fd that holds it (keep it open)."""
    path = paths.run_dir / "dancodes.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirError(
            f"another dancodes daemon (pid {holder}) is already running on data_dir {paths.data_dir}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unlock_data_dir(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
