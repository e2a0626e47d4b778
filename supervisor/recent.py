"""What the daemon remembers of the recent past for "why is this chat stuck?": which opencode instances
its events show loaded or disposed, and each service's recent state changes (probe failures,
recoveries, restarts).

A chat's status, and its last event, are kept in one place (`supervisor.chats`); this keeps only the
facts around it that the board does not. It reads opencode's `/global/event` through `ChatBoard.observers` and
each service's changes through `Service.on_change`, so it asks nothing of anyone: in particular it
boots no opencode instance (every non-`/global` route of opencode does).

Instances: opencode boots one silently on the first request naming its directory (the boot's only
event is a `project.updated` of the project, not of the directory) and announces a dispose with
`server.instance.disposed`. So an instance is "loaded" once an event came from its directory,
"disposed" after that event, and "unknown" when nothing was heard of it since the daemon last
(re)connected to opencode's stream (a reconnect may follow a restart of opencode, which drops every
instance). Nothing here is stored: a restarted daemon starts knowing nothing.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .service import Service

InstanceState = Literal["loaded", "disposed", "unknown"]

#: the state changes kept per service (each probe failure is one, so a few minutes of a flapping probe)
HISTORY = 30

#: the directories remembered; past it the least recently heard of is forgotten (each is one chat's worktree)
MAX_DIRECTORIES = 500


@dataclass
class InstanceSeen:
    state: InstanceState
    last_event: float | None  # epoch seconds of the last event from its directory
    disposed_at: float | None

    def as_json(self, directory: str) -> dict[str, Any]:
        return {
            "directory": directory,
            "state": self.state,
            "last_event": self.last_event,
            "disposed_at": self.disposed_at,
        }


@dataclass(frozen=True)
class ServiceChange:
    at: float  # epoch seconds
    state: str
    reason: str | None
    pid: int | None

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "state": self.state, "reason": self.reason, "pid": self.pid}


class Recent:
    """Fed by `on_event` (opencode's events, with their directory) and `watch` (services)."""

    def __init__(self) -> None:
        self.instances: dict[str, InstanceSeen] = {}
        self.history: dict[str, deque[ServiceChange]] = {}
        self.connected_at: float | None = None  # when the stream last (re)connected

    # -- opencode's events --------------------------------------------------------------------

    def on_event(self, directory: str, event: dict[str, Any]) -> None:
        """One event of `/global/event`; must be quick and must not raise (it runs in `ChatBoard.apply`)."""
        kind, props = event.get("type"), event.get("properties")
        now = time.time()
        if kind == "server.connected":
            # a new stream: opencode may have restarted, and every instance with it
            self.connected_at = now
            for seen in self.instances.values():
                if seen.state == "loaded":
                    seen.state = "unknown"
            return
        if not isinstance(kind, str) or not isinstance(props, dict):
            return
        if not directory or directory == "global":
            return
        seen = self.instances.pop(directory, InstanceSeen("unknown", None, None))
        self.instances[directory] = seen  # newest last: the oldest go first past the bound
        if kind == "server.instance.disposed":
            seen.state, seen.disposed_at = "disposed", now
        else:
            seen.state, seen.last_event = "loaded", now
        while len(self.instances) > MAX_DIRECTORIES:
            del self.instances[next(iter(self.instances))]

    def instance(self, directory: str) -> InstanceSeen:
        return self.instances.get(directory) or InstanceSeen("unknown", None, None)

    # -- services -----------------------------------------------------------------------------

    def watch(self, service: Service) -> None:
        """Keep `service`'s state changes from now on (each failed probe changes its reason)."""
        changes: deque[ServiceChange] = deque(maxlen=HISTORY)
        self.history[service.name] = changes

        def changed(svc: Service) -> None:
            changes.append(ServiceChange(time.time(), str(svc.state), svc.reason, svc.pid))

        service.on_change(changed)

    def changes(self, name: str) -> list[ServiceChange]:
        return list(self.history.get(name, ()))
