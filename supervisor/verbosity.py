"""-q and -v, shared by `dancodes` and `dancodes-ctl`: one flag each, mutually exclusive.

Kept apart from both command lines so the light `dancodes-ctl` does not import the daemon's.
"""

from __future__ import annotations

import argparse
import logging

#: The daemon's log level for each verbosity: -q, the default, -v.
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def add_verbosity(
    parser: argparse.ArgumentParser,
    *,
    default: object,
    quiet: str = "only warnings and errors",
    verbose: str = "debug events too",
) -> None:
    """-q / -v, one of them, as `verbosity`: -1, 0 or 1."""
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=default,
        help=quiet,
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=default,
        help=verbose,
    )
