"""Real git repositories for tests: a bare "GitHub" remote and a developer clone that pushes to it."""

from __future__ import annotations

import atexit
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.agent import AgentUser, acting_as
from supervisor.errors import SpawnError
from supervisor.projects.gitcli import Command, Completed


def _global_config() -> str:
    """A global git config for the tests, readable by every user: the tests' git runs as root and as
    the agent's user in each other's repositories (the remotes are root's, the worktrees the agent's),
    and git refuses "dubious ownership" unless safe.directory says otherwise. It must be a file:
    `git push` to a local path drops GIT_CONFIG_COUNT before it starts receive-pack."""
    fd, path = tempfile.mkstemp(prefix="dancodes-tests-", suffix=".gitconfig")
    with os.fdopen(fd, "w") as f:
        f.write("[safe]\n\tdirectory = *\n")
    os.chmod(path, 0o644)
    atexit.register(os.unlink, path)
    return path


GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": _global_config(),
    "GIT_CONFIG_NOSYSTEM": "1",
}


def as_owner_of(cwd: Path) -> dict[str, Any]:
    """`subprocess` arguments that run a command as the owner of `cwd`, when the tests are root and a
    clone or worktree belongs to the agent's user: the test then acts as the agent would, and what it
    writes stays the agent's (root's files there are what only an operator's hand leaves)."""
    owner = cwd.stat().st_uid
    if os.geteuid() != 0 or owner == 0:
        return {"env": GIT_ENV}
    gid = cwd.stat().st_gid
    # the agent cannot read root's home: an empty one
    env = {**GIT_ENV, "HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"}
    return {"env": env, "user": owner, "group": gid, "extra_groups": []}


@contextmanager
def writing_as_owner_of(path: Path) -> Iterator[None]:
    """Files this thread writes in the block belong to the owner of `path` and are checked with its
    rights (setfsuid), so a test builds a worktree's state as the agent would have."""
    info = path.stat()
    user = None if os.geteuid() != 0 or info.st_uid == 0 else AgentUser("owner", info.st_uid, info.st_gid)
    with acting_as(user):
        yield


def run_here(command: Command) -> Completed:
    """The store's runner for its git outside the daemon: `subprocess` waits on the child here (the
    daemon's own runner goes through its reaper)."""
    uid, gid = command.user if command.user is not None else (None, None)
    try:
        done = subprocess.run(
            command.argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=command.env,
            cwd=command.cwd,
            user=uid,
            group=gid,
            extra_groups=None if command.user is None else [],
            check=False,
        )
    except OSError as exc:
        raise SpawnError(f"cannot start '{command.argv[0]}': {exc.strerror or exc}") from None
    return Completed(done.returncode, done.stderr.decode(errors="replace"))


def git(cwd: Path, *args: str) -> str:
    done: subprocess.CompletedProcess[str] = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, **as_owner_of(cwd)
    )
    return done.stdout.strip()


def commit_file(cwd: Path, name: str, text: str) -> str:
    (cwd / name).write_text(text)
    git(cwd, "add", name)
    git(cwd, "commit", "-q", "-m", f"add {name}")
    return git(cwd, "rev-parse", "HEAD")


@dataclass
class Remote:
    """The bare remote and a working clone of it standing in for "someone else pushing"."""

    bare: Path
    dev: Path

    def push_commit(self, name: str, text: str = "x\n", branch: str = "main") -> str:
        git(self.dev, "checkout", "-q", "-B", branch, f"origin/{branch}" if self.has(branch) else "HEAD")
        sha = commit_file(self.dev, name, text)
        git(self.dev, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        git(self.dev, "fetch", "-q", "origin")
        return sha

    def has(self, branch: str) -> bool:
        return bool(git(self.dev, "branch", "-r", "--list", f"origin/{branch}"))


def make_remote(remotes: Path, dev: Path, owner: str, name: str) -> Remote:
    """A bare repo at `remotes/owner/name.git` with two commits on main, and a clone of it at `dev`."""
    bare = remotes / owner / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    # --shared=0777: the agent's user pushes to it too, as it would to GitHub
    git(remotes, "init", "-q", "--bare", "--shared=0777", "-b", "main", str(bare))
    git(bare, "config", "receive.denyNonFastforwards", "false")  # --shared turns it on; GitHub allows them
    git(remotes, "clone", "-q", str(bare), str(dev))
    git(dev, "checkout", "-q", "-b", "main")
    commit_file(dev, "README.md", f"# {name}\n")
    commit_file(dev, ".gitignore", "*.log\n")
    git(dev, "push", "-q", "-u", "origin", "main")
    return Remote(bare=bare, dev=dev)
