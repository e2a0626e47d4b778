#!/usr/bin/env python3
"""The web app's size budget, per page: what a browser downloads for the page (JS + CSS, gzipped) is at most
60 KB, and so is each lazily imported chunk (with the CSS and shared chunks it brings that the page did not).

    scripts/web-budget.py [DIST] [--budget BYTES]

DIST (default web/dist) must hold Vite's manifest (`build.manifest`: DIST/.vite/manifest.json), which says
what each chunk imports statically, imports lazily and loads as CSS. The page is the entry chunk and all it
imports statically; each lazy chunk counts what it adds to that. Prints one line per page; exits 1 with one
line naming each page over the budget, 2 when the build or its manifest is missing. The service worker is
apart.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

BUDGET = 60 * 1024
ROOT = Path(__file__).resolve().parent.parent


def gzipped(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def pages(manifest: dict[str, dict[str, object]]) -> list[tuple[str, list[str]]]:
    """(name, files) for the page and each lazy chunk: the files as Vite wrote them (relative to DIST)."""

    def closure(key: str, seen: set[str]) -> list[str]:
        """`key` and its static imports, depth first, each once; `seen` are keys already counted."""
        if key in seen:
            return []
        seen.add(key)
        keys = [key]
        for imported in manifest[key].get("imports", []):  # type: ignore[attr-defined]
            keys += closure(str(imported), seen)
        return keys

    def files(keys: list[str], loaded: set[str]) -> list[str]:
        out: list[str] = []
        for key in keys:
            chunk = manifest[key]
            for name in [chunk["file"], *chunk.get("css", [])]:  # type: ignore[list-item]
                if str(name) not in loaded:
                    loaded.add(str(name))
                    out.append(str(name))
        return out

    entries = [key for key, chunk in manifest.items() if chunk.get("isEntry")]
    if len(entries) != 1:
        raise ValueError(f"the manifest has {len(entries)} entry chunks; the app has one page")
    seen: set[str] = set()
    loaded: set[str] = set()
    main = closure(entries[0], seen)
    result = [("index.html", files(main, loaded))]
    lazy = [str(d) for key in main for d in manifest[key].get("dynamicImports", [])]  # type: ignore[attr-defined]
    done: set[str] = set()
    while lazy:
        key = lazy.pop(0)
        if key in done or key in seen:
            continue
        done.add(key)
        keys = closure(key, set(seen))  # what it adds to the page: the page's chunks are there already
        result.append((key, files(keys, set(loaded))))
        lazy += [str(d) for k in keys for d in manifest[k].get("dynamicImports", [])]  # type: ignore[attr-defined]
    return result


def main(argv: list[str]) -> int:
    args = list(argv)
    budget = BUDGET
    if "--budget" in args:
        at = args.index("--budget")
        try:
            budget = int(args[at + 1])
        except (IndexError, ValueError):
            print("web-budget.py: error: --budget takes a number of bytes", file=sys.stderr)
            return 2
        del args[at : at + 2]
    dist = Path(args[0]) if args else ROOT / "web" / "dist"
    manifest_file = dist / ".vite" / "manifest.json"
    try:
        manifest = json.loads(manifest_file.read_text())
        measured = [(name, sum(gzipped(dist / f) for f in files), files) for name, files in pages(manifest)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(
            f"web-budget.py: error: cannot read the build's manifest {manifest_file}: {exc}", file=sys.stderr
        )
        return 2
    over = [(name, size) for name, size, _ in measured if size > budget]
    for name, size, files in measured:
        print(f"{name}: {size / 1024:.1f} KB gzipped ({', '.join(files)})")
    for name, size in over:
        kb = f"{size / 1024:.1f} KB gzipped, over the {budget / 1024:g} KB budget"
        print(f"web-budget.py: error: {name} is {kb}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
