"""git's own command line, for the one job where libgit2 was the bottleneck: writing a new worktree's files.

Measured on a 50,000-file repository (`python -m bench worktrees`): libgit2's checkout spent about
twice git's CPU (it resolves each file's path with realpath(3), 16 failed readlink calls a file, to
look up its attributes) and held Python's GIL the whole time, so the daemon answered nothing for
seconds while a chat's worktree was made. `git read-tree -u` in a child process, as the agent, does
the same work at git's speed while the daemon waits without the GIL.

The store says what to run (`Command`); who runs it is given to the store: inside the daemon every
child's exit belongs to the reaper (DESIGN §2), so the daemon hands it `through_reaper`, which spawns
from the store's worker thread through `supervisor.spawn`. Nothing here waits on a child itself
(tests give the store a runner of their own).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpawnError

if TYPE_CHECKING:
    from ..reaper import Reaper


@dataclass(frozen=True)
class Command:
    """A command line, its environment and working directory, and the (uid, gid) it runs as (None: ours)."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    user: tuple[int, int] | None


@dataclass(frozen=True)
class Completed:
    code: int  # as `os.waitstatus_to_exitcode` gives it: negative when killed by a signal
    stderr: str


Runner = Callable[[Command], Completed]


class CommandFailed(Exception):
    """git could not be started, or ended with an error: the message says why, in one line."""


def through_reaper(reaper: Reaper) -> Runner:
    """A runner for the daemon: from a worker thread (`trio.to_thread`), start the command on the
    event loop through `supervisor.spawn.run`, so its exit status is the reaper's to collect, and
    block this thread alone until it ends."""
    import trio

    from .. import spawn

    def run(command: Command) -> Completed:
        finished = trio.from_thread.run(
            functools.partial(
                spawn.run,
                reaper,
                command.argv,
                env=command.env,
                cwd=str(command.cwd),
                user=command.user,
            )
        )
        return Completed(finished.status.code, finished.stderr.decode(errors="replace"))

    return run


def environment(home: Path | None) -> dict[str, str]:
    """What git gets: a PATH, a home for its global config (the agent's, as the daemon's libgit2
    reads it), messages in plain English. Nothing else of the daemon's: no token, no secret."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
    }
    home_dir = str(home) if home is not None else os.environ.get("HOME")
    if home_dir:
        env["HOME"] = home_dir
    return env


def check_out(
    run: Runner, gitdir: Path, workdir: Path, *, user: tuple[int, int] | None, home: Path | None
) -> None:
    """Write HEAD's files into `workdir` and its index into `gitdir`, as `git worktree add` does
    after it has laid out the metadata; CommandFailed if git fails.

    `read-tree --reset -u` touches the index and the files alone: no ref, no reflog, no hook.
    fsmonitor is off (its setting names a command, and a new checkout has nothing to monitor yet);
    submodules are left uninitialised, as libgit2 left them.
    """
    argv = [
        "git",
        f"--git-dir={gitdir}",
        f"--work-tree={workdir}",
        "-c",
        "core.fsmonitor=false",
        "read-tree",
        "--reset",
        "-u",
        "--no-recurse-submodules",
        "HEAD",
    ]
    try:
        done = run(Command(argv, environment(home), workdir, user))
    except SpawnError as exc:
        raise CommandFailed(str(exc)) from None
    if done.code != 0:
        ended = f"exited with status {done.code}" if done.code > 0 else f"was killed by signal {-done.code}"
        # git says why in its last "fatal:" line; the "error:" lines before it repeat the detail
        fatal = [line for line in done.stderr.splitlines() if line.startswith("fatal: ")]
        said = fatal[-1].removeprefix("fatal: ") if fatal else done.stderr
        reason = " ".join(said.split()) or f"git {ended}"
        raise CommandFailed(f"git read-tree: {reason}")
