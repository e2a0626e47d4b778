"""opencode's configuration as the daemon hands it over: the user's layers merged, ours forced on top.

Layers, each over the one before (objects merge key by key, `plugin` and `instructions` lists add up,
as opencode merges its own layers):

1. `conf/opencode.json`             our defaults
2. `<data_dir>/opencode.json`       the user's, on the volume (providers, models, agents …)
3. `$OPENCODE_CONFIG`               the user's file, named in the daemon's environment
4. `$OPENCODE_CONFIG_CONTENT`       the user's inline JSON
5. `FORCED`                         what must hold whatever the user wrote: no sharing, no self-update,
                                    and our plugin that keeps opencode's password out of tool shells

The result reaches opencode as `OPENCODE_CONFIG_CONTENT` (opencode's highest layer, above a repo's own
`opencode.json`), so the agent needs no read access to the user's files and a repo cannot turn sharing
back on. Files may be JSONC (comments, trailing commas), as opencode allows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SpawnError

#: Settings the daemon must force: a shared chat leaves the box; an update must come with the image.
FORCED: dict[str, Any] = {"share": "disabled", "autoupdate": False}
#: Lists that opencode concatenates across layers instead of replacing.
_ADDITIVE = frozenset({"plugin", "instructions"})
#: Our plugin (in conf/): deletes OPENCODE_SERVER_PASSWORD from opencode's environment once it has
#: read it, so the shells of its tools never inherit it.
SCRUB_PLUGIN = "opencode-scrub-env.js"
#: The plugins of conf/ the daemon copies into `<data_dir>/plugins` for opencode to load.
PLUGINS = (SCRUB_PLUGIN,)


def compose(*, conf_dir: Path, data_dir: Path, plugins_dir: Path, environ: Mapping[str, str]) -> str:
    """The merged configuration as JSON text; SpawnError names a user file that cannot be used."""
    layers: list[tuple[str, dict[str, Any]]] = [("defaults", _load(conf_dir / "opencode.json"))]
    volume = data_dir / "opencode.json"
    if volume.is_file():
        layers.append((str(volume), _load(volume)))
    path = environ.get("OPENCODE_CONFIG")
    if path:
        layers.append((path, _load(Path(path), what="OPENCODE_CONFIG")))
    content = environ.get("OPENCODE_CONFIG_CONTENT")
    if content:
        layers.append(("OPENCODE_CONFIG_CONTENT", _parse(content, "OPENCODE_CONFIG_CONTENT")))
    plugin = (plugins_dir / SCRUB_PLUGIN).as_uri()
    layers.append(("forced", {**FORCED, "plugin": [plugin]}))
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = merge(merged, layer)
    return json.dumps(merged)


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(value, Mapping) and isinstance(old, dict):
            merged[key] = merge(old, value)
        elif key in _ADDITIVE and isinstance(value, list) and isinstance(old, list):
            merged[key] = old + [v for v in value if v not in old]
        else:
            merged[key] = value
    return merged


def _load(path: Path, what: str = "opencode config") -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpawnError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpawnError(f"{what} {path} is not UTF-8 text") from None
    return _parse(text, f"{what} {path}")


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        value = json.loads(strip_jsonc(text))
    except ValueError as exc:
        raise SpawnError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SpawnError(f"{source} must be a JSON object")
    return value


def strip_jsonc(text: str) -> str:
    """JSONC to JSON: comments and trailing commas dropped, strings left exactly as they are."""
    out: list[str] = []
    i, n = 0, len(text)
    pending_comma: int | None = None  # index in `out` of a comma that may turn out to be trailing
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            pending_comma = None
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == ",":
            pending_comma = len(out)
            out.append(c)
            i += 1
        elif c in "}]":
            if pending_comma is not None:
                out[pending_comma] = ""
            pending_comma = None
            out.append(c)
            i += 1
        else:
            if not c.isspace():
                pending_comma = None
            out.append(c)
            i += 1
    return "".join(out)
