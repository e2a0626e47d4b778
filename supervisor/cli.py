"""`dancodes`: the daemon's command line (`dancodes run [--config PATH] [-q | -v]`).

Verbosity: by default the daemon logs its info events (services' states, their output); `-q` only
warnings and errors, so a healthy start prints nothing; `-v` debug events too.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from supervisor import __version__
from supervisor.errors import ConfigError, DancodesError
from supervisor.verbosity import LEVELS, add_verbosity


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
    args = parser.parse_args(argv)
    return _run(args.config, json_logs=args.json_logs, level=LEVELS[args.verbosity])


def _run(config_path: str | None, *, json_logs: bool | None, level: int = logging.INFO) -> int:
    from supervisor import logs
    from supervisor.config import load_config
    from supervisor.daemon import Daemon

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
