"""Which config keys may be changed through the wall: settings that tune, never what runs.

A cookie is a weaker credential than the control socket: it travels over the network and lives in
a phone's browser. Through the wall (`PUT`/`DELETE /admin/config/<key>` on TCP) a key may be
changed only when it tunes how things already declared behave:

    gc.<key>, orphans.<key>                    every key of these tables (numbers and switches only)
    services.<existing>.restart.<key>          how a declared service is restarted
    services.<existing>.probe.<timing>         timeout, ready_timeout, interval, failures,
                                               start_timeout, start_seconds
    services.<existing>.stop_grace
    services.<existing>.memory_limit_mb, memory_hard_limit_mb   its memory ceiling

Everything else is the control socket's alone (`dancodes-ctl config set`): what runs and how
(argv, env, cwd, enabled, new services, stop_signal, after), where requests go (probe.url and
unix_socket, dispose_url, git.*: the remote and the GitHub API decide where the token is sent),
the listeners and the wall itself (ports.*, app.*, auth.*), daemon.* and data_dir. A whole table
is never set at once through the wall, only its leaves.
"""

from __future__ import annotations

import msgspec

from .config import Config, GcSettings, OrphanPolicy, RestartPolicy

#: Tables whose every key is a tunable; a field added to one must be a number, a switch or a choice.
TUNABLE_TABLES: dict[str, type[msgspec.Struct]] = {"gc": GcSettings, "orphans": OrphanPolicy}
PROBE_TIMINGS = frozenset(
    {"timeout", "ready_timeout", "interval", "failures", "start_timeout", "start_seconds"}
)
RESTART_KEYS = frozenset(RestartPolicy.__struct_fields__)


def tunable_through_wall(key: str, config: Config) -> bool:
    """May `key` (dotted) be set or unset with the cookie alone?"""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in TUNABLE_TABLES:
        return parts[1] in TUNABLE_TABLES[parts[0]].__struct_fields__
    if len(parts) < 3 or parts[0] != "services" or parts[1] not in config.services:
        return False
    rest = parts[2:]
    if rest in (["stop_grace"], ["memory_limit_mb"], ["memory_hard_limit_mb"]):
        return True
    if len(rest) == 2 and rest[0] == "restart":
        return rest[1] in RESTART_KEYS
    return len(rest) == 2 and rest[0] == "probe" and rest[1] in PROBE_TIMINGS


def wall_refusal(key: str) -> str:
    """The one line a refused key gets."""
    return (
        f"config: {key}: cannot be changed through the web, only settings that tune (gc.*, orphans.*, "
        "a service's restart.*, probe timings, stop_grace, memory limits); change it with "
        "`dancodes-ctl config set` on the control socket"
    )
