#!/usr/bin/env python3
"""Add opencode's per-platform packages that npm left out of package-lock.json.

`opencode-ai` ships its binary in optional packages, one per platform (opencode-linux-x64,
opencode-linux-arm64, ...). npm normally records all of them in the lockfile, but a registry that lacks
some of them (the partial mirror this project was set up behind answers 404 for all but linux-x64) makes
npm silently drop them, and then `npm ci` refuses the lockfile ("Missing: opencode-darwin-arm64@ from lock
file") and could not install the arm64 binary anyway. This script adds an entry for every missing optional
dependency of opencode-ai: os/cpu/libc and integrity from the registry when it has that version, otherwise
os/cpu/libc derived from the package name (opencode's scheme: opencode-<os>-<cpu>[-baseline][-musl]) and no
integrity, which npm accepts (it then fetches the tarball by name@version from the configured registry,
without a hash check).

Run after `npm install` whenever the opencode pin changes:  python3 scripts/npm-lock-platforms.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "package-lock.json"
PARENT = "opencode-ai"
OS_NAMES = {"windows": "win32", "darwin": "darwin", "linux": "linux"}


def registry() -> str:
    out = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True, check=True)
    return out.stdout.strip().rstrip("/") + "/"


def from_registry(reg: str, name: str, version: str) -> dict[str, Any] | None:
    if not reg.startswith(("https://", "http://")):
        raise SystemExit(f"unsupported npm registry URL: {reg}")
    req = urllib.request.Request(reg + name, headers={"Accept": "application/vnd.npm.install-v1+json"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (scheme checked above)
            packument = json.load(resp)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    meta = packument.get("versions", {}).get(version)
    if meta is None:
        return None
    entry: dict[str, Any] = {"version": version}
    if integrity := meta.get("dist", {}).get("integrity"):
        entry["integrity"] = integrity
    for key in ("cpu", "libc"):
        if key in meta:
            entry[key] = meta[key]
    entry["optional"] = True
    if "os" in meta:
        entry["os"] = meta["os"]
    return entry


def from_name(name: str, version: str) -> dict[str, Any]:
    parts = name.split("-")  # opencode, os, cpu, [baseline], [musl]
    entry: dict[str, Any] = {"version": version, "cpu": [parts[2]]}
    if parts[-1] == "musl":
        entry["libc"] = ["musl"]
    entry["optional"] = True
    entry["os"] = [OS_NAMES[parts[1]]]
    return entry


def main() -> int:
    lock = json.loads(LOCK.read_text())
    packages: dict[str, Any] = lock["packages"]
    wanted: dict[str, str] = packages[f"node_modules/{PARENT}"].get("optionalDependencies", {})
    reg = registry()
    added = 0
    for name, version in sorted(wanted.items()):
        key = f"node_modules/{name}"
        if key in packages:
            continue
        entry = from_registry(reg, name, version)
        if entry is None:
            entry = from_name(name, version)
            print(f"{name}@{version}: not on {reg}; added without integrity", file=sys.stderr)
        else:
            print(f"{name}@{version}: added from {reg}", file=sys.stderr)
        packages[key] = entry
        added += 1
    if added:
        # npm keeps lockfile packages sorted by path; keep "" first.
        lock["packages"] = {"": packages[""], **{k: packages[k] for k in sorted(packages) if k}}
        LOCK.write_text(json.dumps(lock, indent=2) + "\n")
    print(f"{added} entries added to {LOCK.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
