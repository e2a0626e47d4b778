"""The exceptions dancodes raises on purpose, all under one base.

    DancodesError
    ├── ConfigError          a config file that cannot be read or does not validate
    │   ├── UnknownKey         a dotted key that names no setting (or, to unset, none the settings file sets)
    │   └── MissingSecret      a secret the environment must provide is unset or too short
    ├── DataDirError         the data directory cannot be created or written
    ├── SaveError            a file could not be saved (disk full: 507, anything else: 500)
    ├── SpawnError           a service's process could not be started (missing binary, bad cwd)
    ├── InstallError         the pinned opencode is missing and could not be installed (no npm, npm failed)
    │   └── UpdateRefused      an opencode update or rollback that was not made (`status`: its HTTP code):
    │                          not an exact version (400), already current, none to roll back to, another one
    │                          running, or the candidate failed the contract check (409); no room to copy
    │                          opencode's state for the check (507)
    ├── ListenError          the daemon could not bind its own listener
    ├── ProcessError         an orphan kill refused or impossible
    │   ├── NoSuchProcess      no live process has that pid
    │   └── KillRefused        the pid is the daemon, a managed service, or not a descendant
    ├── ControlError         `dancodes-ctl` could not get an answer from the daemon
    │   └── DaemonUnreachable  nothing listens on the control socket
    ├── ProjectError         a repo or worktree request that cannot be carried out (`status`: its HTTP code)
    │   ├── InvalidName        an owner, repo name, session id or branch that fails validation (400)
    │   ├── NotFound           no such repo or worktree on disk (404)
    │   ├── Conflict           exists already, still has worktrees, or would lose work (409)
    │   └── GitFailed          git itself failed: clone, fetch, worktree add (502)
    ├── UpstreamError        a service the daemon asks on the user's behalf failed (`status`: its HTTP code)
    │   ├── GitHubError        the GitHub API refused or could not be reached (502), or no token (503)
    │   └── OpencodeError      opencode did not answer as expected (502)
    └── PushError            a web push request that cannot be carried out (`status`: its HTTP code)
        ├── InvalidSubscription  an endpoint or key that is not a browser's push subscription (400)
        ├── UnknownSubscription  no subscription has that id (404)
        ├── TooManySubscriptions the cap on subscriptions is reached (409)
        └── PushUnavailable      the VAPID keys are not made (yet), or could not be (503)

Every message is one line that names what is wrong, fit to show a user as it is.
"""


class DancodesError(Exception):
    """Base of every error dancodes raises on purpose."""


class ConfigError(DancodesError):
    """A config file that cannot be read or does not validate; `key` names the offending key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        super().__init__(message)


class UnknownKey(ConfigError):
    """A dotted key that names no setting, or, to unset, none that the settings file sets (HTTP 404)."""


class DataDirError(DancodesError):
    """The data directory cannot be created or written."""


class SaveError(DancodesError):
    """A file the daemon writes for the user (settings.toml) could not be saved; nothing was changed.

    `status` is 507 Insufficient Storage when the disk or the quota is full: the request was fine and
    will work once space is freed. Any other OS error (read-only, I/O, permissions) is a 500.
    """

    def __init__(self, message: str, *, status: int = 500) -> None:
        self.status = status
        super().__init__(message)


class SpawnError(DancodesError):
    """A service's process could not be started."""


class InstallError(DancodesError):
    """The opencode the install pins is neither here nor installable: no npm, or npm failed."""


class UpdateRefused(InstallError):
    """An opencode update or rollback that was not made; the running opencode is left as it was.

    `status` 400: the version asked for is not an exact one; 409: it is already the current one, there is
    none to roll back to, another update is running, or the candidate failed the contract check; 507: no
    room to copy opencode's state for the check (500: it could not be copied for another reason)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        self.status = status
        super().__init__(message)


class ListenError(DancodesError):
    """The daemon could not bind one of its own listeners."""


class ProcessError(DancodesError):
    """An orphan could not be killed; `pid` is the process asked for."""

    def __init__(self, message: str, *, pid: int) -> None:
        self.pid = pid
        super().__init__(message)


class NoSuchProcess(ProcessError):
    """No live process has that pid."""


class KillRefused(ProcessError):
    """The pid is the daemon itself, a managed service, or not a descendant of the daemon."""


class ControlError(DancodesError):
    """`dancodes-ctl` could not get a good answer from the daemon; `status` is the HTTP status if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class DaemonUnreachable(ControlError):
    """Nothing listens on the control socket: the daemon is not running, or another socket is meant."""


class MissingSecret(ConfigError):
    """A secret the environment must provide (AUTH_PASSWORD, AUTH_SECRET) is unset or too short."""


class ProjectError(DancodesError):
    """A repo or worktree request that cannot be carried out; `status` is the HTTP status to answer."""

    status = 400


class InvalidName(ProjectError):
    """An owner, repo name, session id or branch that fails validation."""

    status = 400


class NotFound(ProjectError):
    """No such repo or worktree on disk."""

    status = 404


class Conflict(ProjectError):
    """The repo or worktree exists already, a repo still has worktrees, or a delete would lose work."""

    status = 409


class GitFailed(ProjectError):
    """git itself failed (clone, fetch, worktree add); the message carries libgit2's reason."""

    status = 502


class UpstreamError(DancodesError):
    """A service the daemon asks on the user's behalf failed; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        self.status = status
        super().__init__(message)


class GitHubError(UpstreamError):
    """The GitHub API refused or could not be reached (502), or no token is configured (503)."""


class OpencodeError(UpstreamError):
    """opencode did not answer as expected."""


class PushError(DancodesError):
    """A web push request that cannot be carried out; `status` is the HTTP status to answer."""

    status = 400


class InvalidSubscription(PushError):
    """An endpoint or a key that is not a browser's push subscription (or an endpoint not allowed)."""

    status = 400


class UnknownSubscription(PushError):
    """No push subscription has that id."""

    status = 404


class TooManySubscriptions(PushError):
    """The cap on push subscriptions is reached: one must be deleted first."""

    status = 409


class PushUnavailable(PushError):
    """The VAPID keys are not made yet, or could not be made: nothing can be pushed."""

    status = 503
