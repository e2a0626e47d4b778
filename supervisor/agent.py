"""The agent's boundary: the user opencode and its tools run as, and the environment they get.

The agent (opencode and every tool it runs) is code the user did not write, steered by text from repos
and the web, so it is treated as untrusted (DESIGN §3). When the daemon runs as root:

- agent services run as `agent.user`, an unprivileged user created if missing. It owns opencode's
  state, the clones, the worktrees and its own home, and nothing else: the daemon's run dir (control,
  auth and Caddy admin sockets) and secrets dir stay root's and 0700, and the kernel keeps
  `/proc/<pid>/environ` of root's processes from it.
- the daemon's own git work on the agent's trees runs with the agent's file-system identity
  (`acting_as`): what it writes stays the agent's, and a symlink the agent plants never leads the
  daemon anywhere the agent could not write itself.

Whatever the uid, the agent's environment is built from an allowlist (`agent_environment`): what its
tools need (PATH, locale, TZ, proxies and CA bundles, provider keys, names added in `agent.env`), never
`AUTH_*`, `GITHUB_TOKEN` or any other secret of the daemon's.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pwd
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import structlog

from .errors import DataDirError

log = structlog.get_logger("dancodes.agent")

#: `agent.user` that keeps the agent under the daemon's own uid (explicit opt-out)
SAME_USER = "root"

#: Exact names the agent gets from the daemon's environment.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "COLORTERM",
        "TMPDIR",
        # proxies and CA bundles: behind a corporate proxy the agent's tools must use them too
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "NODE_EXTRA_CA_CERTS",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        # providers that are not configured by an *_API_KEY alone
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "VERTEX_LOCATION",
        "AZURE_RESOURCE_NAME",
    }
)
ALLOWED_PREFIXES = ("LC_",)
#: Provider keys opencode reads (OPENROUTER_API_KEY, ANTHROPIC_API_KEY, …) and their endpoints.
ALLOWED_SUFFIXES = ("_API_KEY", "_BASE_URL")
#: Never the agent's, whatever the config says: the wall's secrets and the daemon's own variables.
DENIED_PREFIXES = ("AUTH_", "DANCODES_")
DENIED_NAMES = frozenset({"GITHUB_TOKEN", "GH_TOKEN", "OPENCODE_SERVER_PASSWORD", "OPENCODE_SERVER_USERNAME"})


@dataclass(frozen=True)
class AgentUser:
    """The unprivileged user the agent runs as."""

    name: str
    uid: int
    gid: int


def allowed(name: str, extra: tuple[str, ...] = ()) -> bool:
    """May the variable `name` reach the agent? `extra`: names from `agent.env`, `PREFIX*` for prefixes."""
    if name in DENIED_NAMES or name.startswith(DENIED_PREFIXES):
        return False
    if name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES) or name.endswith(ALLOWED_SUFFIXES):
        return True
    return any(name.startswith(e[:-1]) if e.endswith("*") else name == e for e in extra)


def agent_environment(
    environ: Mapping[str, str], *, extra: tuple[str, ...] = (), user: AgentUser | None, home: Path
) -> dict[str, str]:
    """The environment an agent service starts from (its config's `env` and runtime values go on top).

    With its own user it gets that user's identity and home; under the daemon's uid (not root, or
    opted out) HOME and the user's names pass through, so a developer's `make run` keeps their
    git and npm set-up.
    """
    env = {name: value for name, value in environ.items() if allowed(name, extra)}
    env.setdefault("PATH", os.defpath)
    if user is not None:
        env.update(HOME=str(home), USER=user.name, LOGNAME=user.name, SHELL=_shell())
    else:
        for name in ("HOME", "USER", "LOGNAME", "SHELL"):
            if name in environ:
                env[name] = environ[name]
        env.setdefault("HOME", str(home))
    return env


def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


# -- the user ---------------------------------------------------------------------------------------


def boundary_off(name: str) -> bool:
    """Does the agent share the daemon's uid? Logged as a warning when it does.

    That is the case when the daemon is not root (a developer's `make run`: it cannot switch users) or
    when `agent.user = "root"` opts out: the agent can then read the daemon's secrets through /proc
    and reach its sockets.
    """
    if os.geteuid() != 0:
        reason = "the daemon is not root, so opencode and its tools run as the daemon's own user"
    elif name == SAME_USER:
        reason = 'agent.user = "root": opencode and its tools run as root'
    else:
        return False
    log.warning("agent_boundary_off", reason=reason)
    return True


def find_user(name: str) -> AgentUser | None:
    """The user `name`, None if it does not exist; DataDirError if it is privileged."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if entry.pw_uid == 0:
        raise DataDirError(f"agent.user {name} has uid 0; name an unprivileged user, or root to opt out")
    return AgentUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def useradd_argv(name: str, home: Path) -> list[str]:
    """The command that creates the agent's user: a system user with a group of its own, no login."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    home_dir = ["--no-create-home", "--home-dir", str(home)]
    return [useradd, "--system", "--user-group", *home_dir, "--shell", _shell(), name]


# -- what it owns -----------------------------------------------------------------------------------


def give_to_agent(user: AgentUser, paths: list[Path], *, private: tuple[Path, ...] = ()) -> None:
    """Make each directory exist and belong to the agent, contents included.

    A tree already owned by the agent at its top is trusted as it is (the daemon writes into it as the
    agent); one that is not (made by an older version, or by hand as root) is handed over whole,
    without following symlinks. `private` directories are made 0700.
    """
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        if path.lstat().st_uid != user.uid:
            _chown_tree(path, user)
            log.info("agent_tree_handed_over", path=str(path), user=user.name)
        if path in private:
            path.chmod(0o700)


def _chown_tree(root: Path, user: AgentUser) -> None:
    os.lchown(root, user.uid, user.gid)
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            try:
                os.lchown(os.path.join(top, name), user.uid, user.gid)
            except FileNotFoundError:
                continue


def check_reachable(path: Path, user: AgentUser, what: str = "data_dir") -> None:
    """Raise DataDirError unless the agent can walk down to the directory `path` (every ancestor and
    itself searchable); `what` names it in the message."""
    for parent in reversed([path, *path.parents]):
        info = parent.stat()
        mode = info.st_mode
        if info.st_uid == user.uid:
            ok = bool(mode & stat.S_IXUSR)
        elif info.st_gid == user.gid:
            ok = bool(mode & stat.S_IXGRP)
        else:
            ok = bool(mode & stat.S_IXOTH)
        if not ok:
            raise DataDirError(
                f"{what} {path} is out of the agent user {user.name}'s reach: {parent} is mode "
                f"{stat.S_IMODE(mode):04o}; make it searchable (chmod o+x {parent}) or move {what}"
            )


# -- acting as the agent ----------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def acting_as(user: AgentUser | None) -> Iterator[None]:
    """File-system access as `user` in this thread for the block (Linux setfsuid/setfsgid).

    The file-system ids are per thread, so a worker thread doing git for the daemon does not change
    what the rest of the daemon may touch. Files it creates are the agent's, and the kernel checks
    every path it opens with the agent's rights. None: as the daemon itself.
    """
    if user is None:
        yield
        return
    old_gid = _libc.setfsgid(user.gid)
    old_uid = _libc.setfsuid(user.uid)
    try:
        yield
    finally:
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)


@contextmanager
def acting_as_daemon() -> Iterator[None]:
    """Undo `acting_as` for a block: e.g. removing a tree that holds files root made by hand in a
    worktree (shutil.rmtree does not follow symlinks, so root's rights stay inside the tree)."""
    old_gid = _libc.setfsgid(os.getegid())
    old_uid = _libc.setfsuid(os.geteuid())
    try:
        yield
    finally:
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)


P = ParamSpec("P")
R = TypeVar("R")


class OwnedByAgent:
    """A mixin for objects whose blocking methods work on the agent's trees (`as_agent` marks them)."""

    agent: AgentUser | None = None

    def load_modules(self) -> None:
        """Import what the methods import lazily, while still the daemon: the agent's user may not
        be able to read the daemon's Python (e.g. a Python installed under /root)."""


def as_agent(method: Callable[P, R]) -> Callable[P, R]:
    """Run the method with the agent's file-system identity of `self.agent` (an `OwnedByAgent`)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        owner = args[0]
        assert isinstance(owner, OwnedByAgent)
        if owner.agent is not None:
            owner.load_modules()
        with acting_as(owner.agent):
            return method(*args, **kwargs)

    return wrapper
