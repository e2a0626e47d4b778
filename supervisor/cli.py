"""`dancodes`: the daemon's command line: `dancodes run [--config PATH] [--env-file PATH] [-q | -v]`,
`dancodes init`, `dancodes service`.

Verbosity: by default the daemon logs its info events (services' states, their output); `-q` only
warnings and errors, so a healthy start prints nothing; `-v` debug events too.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from . import __version__
from .errors import ConfigError, DancodesError
from .verbosity import LEVELS, add_verbosity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dancodes", description="Run opencode and Caddy under a trio daemon."
    )
    parser.add_argument("--version", action="version", version=f"dancodes {__version__}")
    add_verbosity(parser, default=0)
    # also after the command; SUPPRESS keeps the subcommand from resetting one given before it
    common = argparse.ArgumentParser(add_help=False)
    add_verbosity(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", parents=[common], help="run the daemon in the foreground (PID 1 in the container)"
    )
    run.add_argument("--config", metavar="PATH", help="a TOML file overriding conf/dancodes.toml")
    run.add_argument(
        "--json-logs", action="store_true", default=None, help="JSON log lines even on a terminal"
    )
    run.add_argument(
        "--env-file",
        metavar="PATH",
        help="KEY=value secrets (as `dancodes init` writes); the environment wins",
    )
    from .init import wizard

    init = sub.add_parser(
        "init", parents=[common], help="set up: write a config and a 0600 env file of secrets"
    )
    wizard.add_arguments(init)
    from .init import service

    service_cmd = sub.add_parser(
        "service", parents=[common], help="install, remove or control the daemon as a system service"
    )
    service.add_arguments(service_cmd)
    args = parser.parse_args(argv)
    if args.command == "init":
        return wizard.run(args)
    if args.command == "service":
        return service.run(args)
    if args.env_file:
        error = _load_env_file(args.env_file)
        if error:
            print(f"dancodes: {error}", file=sys.stderr)
            return 2
    return _run(args.config, json_logs=args.json_logs, level=LEVELS[args.verbosity])


def _load_env_file(path: str) -> str | None:
    """Set what the file holds and the environment does not; the error to show, if any."""
    import os
    from pathlib import Path

    from .init.plan import parse_env

    try:
        text = Path(path).read_text()
    except OSError as exc:
        return f"cannot read the env file {path}: {exc.strerror or exc}"
    for key, value in parse_env(text).items():
        os.environ.setdefault(key, value)
    return None


def _run(config_path: str | None, *, json_logs: bool | None, level: int = logging.INFO) -> int:
    from . import logs
    from .config import load_config
    from .daemon import Daemon

    logs.configure(json=json_logs, level=level)
    try:
        loaded = load_config(config_path)
        trio.run(Daemon(loaded).run, restrict_keyboard_interrupt_to_checkpoints=True)
    except KeyboardInterrupt:  # Ctrl-C before the daemon took over SIGINT: nothing was started yet
        return 130
    except (DancodesError, BaseExceptionGroup) as exc:
        error = _first_dancodes_error(exc)
        if error is None:
            raise
        print(f"dancodes: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    return 0


def _first_dancodes_error(exc: BaseException) -> DancodesError | None:
    """The error to show: raised directly, or from inside a nursery (an exception group)."""
    if isinstance(exc, DancodesError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_dancodes_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
