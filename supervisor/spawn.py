"""The one way the daemon starts a process: in its own session, its exit claimed by the reaper.

`subprocess.Popen` does the fork/exec (it handles cwd, fd hygiene and exec errors well), but it
never waits: the reaper tells the `Popen` object the status the moment it collects it, so neither
`Popen.__del__` nor `subprocess._cleanup` ever polls that pid later, when it may be someone else's.
`run` is the same for a command the daemon waits on to the end (the git a worktree is checked out
with), its output collected.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from .errors import SpawnError
from .reaper import ChildExit, ExitStatus, Reaper


@dataclass(eq=False)
class Child:
    """A running child process: its pid (also its process group and session), output pipes, exit."""

    pid: int
    stdout: trio.lowlevel.FdStream
    stderr: trio.lowlevel.FdStream
    _exit: ChildExit
    stdin: trio.lowlevel.FdStream | None = None  # with `spawn(..., stdin=True)`: close it when done

    @property
    def status(self) -> ExitStatus | None:
        return self._exit.status

    @property
    def alive(self) -> bool:
        return self._exit.status is None

    async def wait(self) -> ExitStatus:
        return await self._exit.wait()

    def signal_group(self, sig: int) -> bool:
        """Send `sig` to the child's whole process group; False if nothing was left to signal."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        return True


def spawn(
    reaper: Reaper,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    user: tuple[int, int] | None = None,
    stdin: bool = False,
) -> Child:
    """Start `argv` in a new session with piped output; register it with `reaper` before returning.

    `user`: (uid, gid) to run it as, with no supplementary groups (the daemon's root groups would
    otherwise come along). `stdin`: a pipe to its standard input (`Child.stdin`), else /dev/null.

    Synchronous on purpose: no checkpoint lies between the fork and the registration, so the
    reaper cannot collect the child's status before its owner is known.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin else (-1, -1)
    fds = [out_r, out_w, err_r, err_w] + ([in_r, in_w] if stdin else [])
    try:
        popen = subprocess.Popen(
            argv,
            stdin=in_r if stdin else subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            user=None if user is None else user[0],
            group=None if user is None else user[1],
            extra_groups=None if user is None else [],
        )
    except FileNotFoundError as exc:
        for fd in fds:
            os.close(fd)
        missing = cwd if cwd and exc.filename == cwd else argv[0]
        what = "working directory" if missing == cwd else "executable"
        raise SpawnError(f"{what} '{missing}' not found") from None
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        if cwd and exc.filename == cwd:  # e.g. a file where a directory was expected
            raise SpawnError(f"working directory '{cwd}': {exc.strerror or exc}") from None
        raise SpawnError(f"cannot start '{argv[0]}': {exc.strerror or exc}") from None
    exit_ = reaper.register(popen.pid, on_exit=lambda status: setattr(popen, "returncode", status.code))
    os.close(out_w)
    os.close(err_w)
    if stdin:
        os.close(in_r)
    return Child(
        pid=popen.pid,
        stdout=trio.lowlevel.FdStream(out_r),
        stderr=trio.lowlevel.FdStream(err_r),
        _exit=exit_,
        stdin=trio.lowlevel.FdStream(in_w) if stdin else None,
    )


#: what `run` keeps of each output stream: the end, where a failing command says why
OUTPUT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Finished:
    """How a command `run` waited on ended, and the last `OUTPUT_LIMIT` bytes of each of its outputs."""

    status: ExitStatus
    stdout: bytes
    stderr: bytes


async def run(
    reaper: Reaper,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    user: tuple[int, int] | None = None,
) -> Finished:
    """`spawn` a command and wait for it to end, reading its output as it comes (a full pipe would
    stall it). Cancelled, it kills the command's whole process group first: nothing it started is
    left working for a caller that has gone."""
    child = spawn(reaper, argv, env=env, cwd=cwd, user=user)
    outputs: dict[str, bytes] = {}
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, child.stdout, outputs, "stdout")
            nursery.start_soon(_drain, child.stderr, outputs, "stderr")
        status = await child.wait()
    except BaseException:
        child.signal_group(signal.SIGKILL)
        raise
    return Finished(status, outputs["stdout"], outputs["stderr"])


async def _drain(stream: trio.lowlevel.FdStream, into: dict[str, bytes], name: str) -> None:
    kept = b""
    async with stream:
        while chunk := await stream.receive_some():
            kept = (kept + chunk)[-OUTPUT_LIMIT:]
    into[name] = kept
