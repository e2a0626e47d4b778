#!/usr/bin/env python3
"""The web app's icons: a terminal prompt ">_" in light grey on black, drawn here and written as PNGs.

    scripts/make-icons.py            write them into web/public/_app/ (served as /_app/<name>)
    scripts/make-icons.py --check    exit 1 when a committed icon's pixels differ from what this draws

Deterministic and dependency free (zlib and struct only): the same pixels every run, so the committed files
can be checked against this script (tests/test_icons.py). The mark is a union of round-capped strokes whose
edges are anti-aliased by their distance to the pixel's centre. A maskable icon keeps the mark well inside the
safe zone (a circle of 40% of the size around the centre) that launchers crop to; an apple-touch-icon is
opaque (iOS paints transparency black anyway, and rounds the corners itself).
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "web" / "public" / "_app"

#: The strokes, in units of the icon's size: the chevron ">" and the underscore "_".
STROKES = (
    ((0.28, 0.32), (0.50, 0.50)),
    ((0.50, 0.50), (0.28, 0.68)),
    ((0.57, 0.68), (0.74, 0.68)),
)
STROKE_WIDTH = 0.09
INK = 224  # light grey, like the app's text
#: How much of a maskable icon the mark may span: its farthest point stays inside the safe circle.
MASKABLE_SCALE = 0.8

#: name -> (size in px, scale of the mark around the centre)
ICONS: dict[str, tuple[int, float]] = {
    "icon-192.png": (192, 1.0),
    "icon-512.png": (512, 1.0),
    "icon-maskable-192.png": (192, MASKABLE_SCALE),
    "icon-maskable-512.png": (512, MASKABLE_SCALE),
    "apple-touch-icon.png": (180, 1.0),
}


def _distance(px: float, py: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """From the point to the segment a-b."""
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def pixels(size: int, scale: float) -> list[bytes]:
    """The icon's rows of 8-bit grey values."""

    def place(p: tuple[float, float]) -> tuple[float, float]:
        return ((0.5 + (p[0] - 0.5) * scale) * size, (0.5 + (p[1] - 0.5) * scale) * size)

    strokes = [(place(a), place(b)) for a, b in STROKES]
    half = STROKE_WIDTH * scale * size / 2
    xs = [x for s in strokes for x, _ in s]
    ys = [y for s in strokes for _, y in s]
    # only the mark's bounding box needs the distance; the rest is black
    x0, x1 = max(0, int(min(xs) - half - 2)), min(size, int(max(xs) + half + 2))
    y0, y1 = max(0, int(min(ys) - half - 2)), min(size, int(max(ys) + half + 2))
    rows = []
    for y in range(size):
        row = bytearray(size)
        if y0 <= y < y1:
            for x in range(x0, x1):
                d = min(_distance(x + 0.5, y + 0.5, a, b) for a, b in strokes)
                coverage = max(0.0, min(1.0, half - d + 0.5))  # one pixel of soft edge
                row[x] = round(INK * coverage)
        rows.append(bytes(row))
    return rows


def png(rows: list[bytes]) -> bytes:
    """A greyscale 8-bit PNG of these rows (filter 0 on every row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    width, height = len(rows[0]), len(rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def read_png(data: bytes) -> list[bytes]:
    """The rows of a PNG written by `png` (greyscale, 8 bits, filter 0): to compare pixels, not bytes, since
    another zlib may compress the same pixels differently."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if (depth, colour) != (8, 0):
                raise ValueError(f"not 8-bit greyscale (depth {depth}, colour type {colour})")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width + 1
    rows = [raw[i * stride : (i + 1) * stride] for i in range(height)]
    if any(row[0] != 0 for row in rows):
        raise ValueError("a row uses a PNG filter this reader does not undo")
    return [row[1:] for row in rows]


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print(f"usage: {argv[0]} [--check]", file=sys.stderr)
        return 2
    stale = []
    for name, (size, scale) in ICONS.items():
        rows = pixels(size, scale)
        path = OUT / name
        if check:
            if not path.is_file() or read_png(path.read_bytes()) != rows:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png(rows))
    if stale:
        print(f"make-icons: stale or missing in {OUT}: {', '.join(stale)} (run scripts/make-icons.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
