"""dancodes: a trio daemon that runs opencode and Caddy as PID 1, and the CLI that operates it.

The public surface is small: `run` starts the daemon, `load_config` reads and validates a config,
and every error the package raises on purpose derives from `DancodesError` (see `supervisor.errors`).
"""

from importlib.metadata import PackageNotFoundError, version

from .config import Config, load_config
from .errors import DancodesError

try:
    __version__ = version("dancodes")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

__all__ = ["Config", "DancodesError", "__version__", "load_config"]
