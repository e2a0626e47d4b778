"""Live settings: `dancodes-ctl config set|unset` edits `<data_dir>/settings.toml`, then the daemon reloads.

The file is the config's top layer and is written only here, with tomli-w: a change is validated
against the whole config first, then written atomically (temp file, fsync, rename), so a bad value
never reaches the disk and a crash never leaves half a file.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from .config import SETTINGS_FILE, LoadedConfig, load_config
from .errors import ConfigError, SaveError, UnknownKey

_HEADER = "# Written by `dancodes-ctl config set`; the top layer over conf/dancodes.toml and --config.\n"


def parse_value(raw: str) -> Any:
    """A TOML value (`30`, `true`, `["a", "b"]`, `"text"`); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def lookup(loaded: LoadedConfig, key: str) -> Any:
    """The effective value at dotted `key`, as plain data."""
    node: Any = msgspec.to_builtins(loaded.config)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UnknownKey(f"config: {key}: no such key", key=key)
        node = node[part]
    return node


def change(loaded: LoadedConfig, key: str, value: Any | None) -> LoadedConfig:
    """Set dotted `key` to `value` (None: remove it) in the settings file; return the new config."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"config: '{key}' is not a dotted key like orphans.kill_after_minutes", key=key)
    if parts[0] == "data_dir":
        raise ConfigError("config: data_dir: cannot be set inside the data_dir itself", key=key)
    path = loaded.paths.data_dir / SETTINGS_FILE
    current: dict[str, Any] = tomllib.loads(path.read_text()) if path.is_file() else {}
    updated = copy.deepcopy(current)
    node = updated
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config: {key}: '{part}' holds a value, not a table", key=key)
        node = child
    if value is None:
        if parts[-1] not in node:
            raise UnknownKey(f"config: {key}: not set in {path}", key=key)
        del node[parts[-1]]
        _prune(updated)
    else:
        node[parts[-1]] = value
    new = load_config(loaded.source, settings=updated)  # raises on a bad value; nothing written
    _write_atomically(path, _HEADER + tomli_w.dumps(updated))
    return new


def _prune(table: dict[str, Any]) -> None:
    for name in [k for k, v in table.items() if isinstance(v, dict)]:
        _prune(table[name])
        if not table[name]:
            del table[name]


def discard_temp_files(data_dir: os.PathLike[str]) -> None:
    """Remove temp files a daemon killed mid-write left; call it holding the data_dir's lock."""
    for leftover in Path(data_dir).glob(f"{SETTINGS_FILE}.tmp-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _write_atomically(path: os.PathLike[str], text: str) -> None:
    """Write `text` to `path` whole or not at all; SaveError (no temp file left) when it cannot be."""
    target = os.fspath(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise SaveError(f"cannot save {target}: {exc.strerror or exc}", status=507 if full else 500) from None
