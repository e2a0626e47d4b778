"""The narrow interfaces one layer sees of another (as hypercorn's `typing.py`).

The HTTP API (`supervisor.api`) acts on the daemon only through `AdminContext`: the parts it
reads and the few operations it may ask for. `supervisor.daemon.Daemon` satisfies it, and the API
never imports the daemon, so the import graph runs one way: daemon → api → projects, auth, ….
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .agent_git import Identity
    from .auth import AuthWall
    from .chats import ChatBoard
    from .config import LoadedConfig
    from .opencode import OpencodeClient
    from .opencode_versions import OpencodeVersions
    from .orphans import Orphan
    from .projects.clones import Clones
    from .projects.housekeeping import Housekeeper
    from .projects.store import ProjectStore
    from .push.notifier import Notifier
    from .recent import Recent
    from .service import Service


class AdminContext(Protocol):
    """What the /admin routes, the wall and the web app are served from."""

    @property
    def loaded(self) -> LoadedConfig:
        """The config in force (replaced as a whole by `reload`) and the paths derived from it."""

    @property
    def auth(self) -> AuthWall: ...

    @property
    def services(self) -> Mapping[str, Service]: ...

    @property
    def store(self) -> ProjectStore: ...

    @property
    def clones(self) -> Clones: ...

    @property
    def housekeeper(self) -> Housekeeper: ...

    @property
    def opencode(self) -> OpencodeClient: ...

    @property
    def chats(self) -> ChatBoard: ...

    @property
    def recent(self) -> Recent:
        """The last event of each session, the opencode instances seen, each service's recent changes."""

    @property
    def opencode_versions(self) -> OpencodeVersions:
        """The opencode running, the previous and the installed ones; update and rollback."""

    @property
    def notifier(self) -> Notifier:
        """Web push: the subscriptions, the apps' presence, the VAPID key, test pushes."""

    @property
    def agent_identity(self) -> Identity:
        """The author and committer of the agent's commits, and of the ones the phone makes."""

    @property
    def orphans_reaped(self) -> int: ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the daemon is healthy, and the body of /admin/health."""

    async def reload(self) -> None:
        """Read the config file again and apply what changed."""

    def orphans(self) -> list[Orphan]: ...

    async def kill(self, pid: int) -> list[int]:
        """Kill an orphan's process tree (never a service or the daemon); the pids signalled."""

    async def kill_orphans(self) -> list[int]: ...
