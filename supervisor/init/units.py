"""The service definitions `dancodes service install` writes: a systemd unit (Linux) and a launchd plist
(macOS). Pure: the text from the paths and the daemon's stop timeout.

The service manager must give the daemon more time to stop than the daemon gives its services, or it
kills opencode mid-cleanup: its stop timeout is the daemon's `daemon.stop_timeout` plus a margin.
"""

from __future__ import annotations

import plistlib
import shlex
from dataclasses import dataclass
from pathlib import Path

LABEL = "dev.dancodes"
UNIT = "dancodes.service"
STOP_MARGIN = 10.0  # seconds the manager waits beyond the daemon's own stop timeout


@dataclass(frozen=True)
class Layout:
    exe: Path  # the `dancodes` executable
    config: Path
    env_file: Path
    data_dir: Path
    stop_timeout: float  # the daemon's daemon.stop_timeout
    user_unit: bool  # systemd --user (a user's own service) rather than the system's


def systemd_unit(layout: Layout) -> str:
    start = shlex.join([str(layout.exe), "run", "--config", str(layout.config)])
    target = "default.target" if layout.user_unit else "multi-user.target"
    return f"""\
[Unit]
Description=dancodes: opencode for your phone (the daemon, opencode and Caddy)
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart={start}
# the secrets (dancodes init wrote it 0600); the manager reads it, the daemon gets them in its environment
EnvironmentFile={layout.env_file}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec=2
# SIGTERM to the daemon, which stops its services in daemon.stop_timeout ({layout.stop_timeout:g} s); after
# this longer timeout, SIGKILL to whatever is left of the group
KillMode=mixed
TimeoutStopSec={layout.stop_timeout + STOP_MARGIN:g}

[Install]
WantedBy={target}
"""


def launchd_plist(layout: Layout) -> bytes:
    log = str(layout.data_dir / "dancodes.log")
    return plistlib.dumps(
        {
            "Label": LABEL,
            "ProgramArguments": [
                str(layout.exe),
                "run",
                "--config",
                str(layout.config),
                "--env-file",
                str(layout.env_file),
            ],
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},  # restarted when it fails, not when stopped
            "ExitTimeOut": int(layout.stop_timeout + STOP_MARGIN),
            "StandardOutPath": log,
            "StandardErrorPath": log,
            "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        }
    )
