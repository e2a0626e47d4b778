"""Real git repositories for tests: a bare "GitHub" remote and a developer clone that pushes to it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    # the tests run git as root inside clones and worktrees that belong to the agent's user
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True)
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
    git(remotes, "init", "-q", "--bare", "-b", "main", str(bare))
    git(remotes, "clone", "-q", str(bare), str(dev))
    git(dev, "checkout", "-q", "-b", "main")
    commit_file(dev, "README.md", f"# {name}\n")
    commit_file(dev, ".gitignore", "*.log\n")
    git(dev, "push", "-q", "-u", "origin", "main")
    return Remote(bare=bare, dev=dev)
