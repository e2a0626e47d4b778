"""`dancodes service install|uninstall|status|start|stop|restart`: the daemon as a system service.

(`dancodes run` builds its command line from this module too: the unit's writer is imported when used.)

Linux: a systemd unit (`--user` for a user's own); macOS: a launchd agent; Windows: one line (WSL2,
or the container). `install --dry-run` prints what it would write and runs nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .wizard import default_paths

if TYPE_CHECKING:
    from .units import Layout

ACTIONS = ("install", "uninstall", "status", "start", "stop", "restart")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config, env_file, _ = default_paths()
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument(
        "--user", action="store_true", help="systemd: the user's own service, not the system's"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="install: print what would be written, run nothing"
    )
    parser.add_argument("--config", type=Path, default=config, help=f"the config (default {config})")
    parser.add_argument("--env-file", type=Path, default=env_file, help=f"the secrets (default {env_file})")


def run(args: argparse.Namespace) -> int:
    if sys.platform == "win32":
        print(
            "dancodes service: Windows has no service here: run dancodes in WSL2, or the container",
            file=sys.stderr,
        )
        return 2
    try:
        if args.action == "install":
            return _install(args)
        if sys.platform == "darwin":
            return _launchctl(args.action)
        return _systemctl(args.action, user=args.user)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"dancodes service: {args.action} failed: {exc}", file=sys.stderr)
        return 1


def layout_for(args: argparse.Namespace) -> Layout:
    from ..config import load_config
    from .units import Layout

    loaded = load_config(args.config) if args.config.is_file() else load_config()
    exe = Path(shutil.which("dancodes") or Path(sys.executable).with_name("dancodes")).absolute()
    return Layout(
        exe=exe,
        config=args.config.absolute(),
        env_file=args.env_file.absolute(),
        data_dir=loaded.paths.data_dir,
        stop_timeout=loaded.config.daemon.stop_timeout,
        user_unit=args.user,
    )


def _install(args: argparse.Namespace) -> int:
    from .units import LABEL, UNIT, launchd_plist, systemd_unit

    layout = layout_for(args)
    if sys.platform == "darwin":
        path = Path.home() / "Library/LaunchAgents" / f"{LABEL}.plist"
        content = launchd_plist(layout)
        commands = [["launchctl", "bootstrap", f"gui/{os.getuid()}", str(path)]]
    else:
        path = _unit_path(args.user)
        content = systemd_unit(layout).encode()
        ctl = ["systemctl", *(["--user"] if args.user else [])]
        commands = [[*ctl, "daemon-reload"], [*ctl, "enable", "--now", UNIT]]
    if args.dry_run:
        print(f"# {path}")
        print(content.decode(), end="")
        for command in commands:
            print(f"# then: {' '.join(command)}")
        return 0
    if not args.config.is_file() or not args.env_file.is_file():
        print("dancodes service: no config or env file yet: run `dancodes init` first", file=sys.stderr)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    for command in commands:
        subprocess.run(command, check=True)
    print(f"dancodes service: installed {path}; `dancodes service status` shows it")
    return 0


def _unit_path(user: bool) -> Path:
    from .units import UNIT

    if user:
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd/user" / UNIT
    return Path("/etc/systemd/system") / UNIT


def _systemctl(action: str, *, user: bool) -> int:
    from .units import UNIT

    ctl = ["systemctl", *(["--user"] if user else [])]
    if action == "uninstall":
        subprocess.run([*ctl, "disable", "--now", UNIT], check=False)
        _unit_path(user).unlink(missing_ok=True)
        subprocess.run([*ctl, "daemon-reload"], check=False)
        print("dancodes service: uninstalled (the config, the env file and the data dir are kept)")
        return 0
    return subprocess.run([*ctl, action, UNIT], check=False).returncode


def _launchctl(action: str) -> int:
    from .units import LABEL

    path = Path.home() / "Library/LaunchAgents" / f"{LABEL}.plist"
    target = f"gui/{os.getuid()}/{LABEL}"
    command = {
        "uninstall": ["launchctl", "bootout", target],
        "status": ["launchctl", "print", target],
        "start": ["launchctl", "kickstart", target],
        "stop": ["launchctl", "kill", "TERM", target],
        "restart": ["launchctl", "kickstart", "-k", target],
    }[action]
    code = subprocess.run(command, check=False).returncode
    if action == "uninstall":
        path.unlink(missing_ok=True)
    return code
