"""The installable app's files, as committed and as built: the manifest, its icons (drawn by
scripts/make-icons.py), the service worker, and the one list of paths served without the cookie, which
the Caddyfile and the app must agree on. The browser side is tests/browser/test_installable.py; the paths
through the real Caddy, tests/test_wall.py."""

from __future__ import annotations

import importlib.util
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from supervisor.api.web import PUBLIC_FILES

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "web" / "public"
DIST = ROOT / "web" / "dist"
MAKE_ICONS = ROOT / "scripts" / "make-icons.py"


def make_icons() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_icons", MAKE_ICONS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def caddy_public_paths() -> list[str]:
    text = (ROOT / "conf" / "Caddyfile").read_text()
    found = re.findall(r"^\s*@installable path (.+)$", text, re.M)
    assert len(found) == 1, "conf/Caddyfile names the installable files on one `@installable path` line"
    paths: list[str] = found[0].split()
    return paths


def test_caddy_serves_exactly_the_public_files_outside_the_wall() -> None:
    assert caddy_public_paths() == list(PUBLIC_FILES)
    text = (ROOT / "conf" / "Caddyfile").read_text()
    # the route comes before the wall's catch-all, and sends them to the app (never to opencode)
    route = text.index("handle @installable {")
    assert route < text.index("forward_auth unix/")
    assert text[route:].split("}", 1)[0].split("{", 1)[1].strip() == "import to_app 16KB"


def test_the_public_files_are_the_manifest_its_icons_and_the_worker() -> None:
    committed = {f"/_app/{p.name}" for p in (PUBLIC / "_app").iterdir()}
    assert committed | {"/sw.js"} == set(PUBLIC_FILES)
    manifest = json.loads((PUBLIC / "_app" / "manifest.webmanifest").read_text())
    icons = {icon["src"] for icon in manifest["icons"]}
    assert icons <= set(PUBLIC_FILES)
    # the page's own links: the manifest and the apple-touch-icon
    index = (ROOT / "web" / "index.html").read_text()
    links = dict(re.findall(r'<link rel="([a-z-]+)"[^>]* href="([^"]+)"', index))
    assert links["manifest"] == "/_app/manifest.webmanifest"
    assert links["apple-touch-icon"] in PUBLIC_FILES
    assert links["icon"] in PUBLIC_FILES


def test_the_manifest_makes_a_standalone_black_app_with_every_icon_it_needs() -> None:
    manifest = json.loads((PUBLIC / "_app" / "manifest.webmanifest").read_text())
    assert manifest["name"] == "dancodes"
    assert 0 < len(manifest["short_name"]) <= 12  # what fits under a home-screen icon
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert manifest["theme_color"] == manifest["background_color"] == "#000000"
    kinds = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")} <= kinds
    for icon in manifest["icons"]:
        assert icon["type"] == "image/png"
        width, height = png_size((PUBLIC / icon["src"].removeprefix("/")).read_bytes())
        assert f"{width}x{height}" == icon["sizes"], icon["src"]
    assert png_size((PUBLIC / "_app" / "apple-touch-icon.png").read_bytes()) == (180, 180)


def test_the_committed_icons_are_what_the_script_draws() -> None:
    out = subprocess.run(
        [sys.executable, str(MAKE_ICONS), "--check"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_check_finds_an_icon_that_drifted(tmp_path: Path) -> None:
    icons = make_icons()
    rows = icons.pixels(192, 1.0)
    assert icons.read_png(icons.png(rows)) == rows
    changed = [*rows[:-1], bytes([1]) + rows[-1][1:]]
    assert icons.read_png(icons.png(changed)) != rows


def test_a_maskable_icon_keeps_the_mark_inside_the_safe_zone() -> None:
    """Launchers crop a maskable icon to as little as a circle of 40% of its size around the centre."""
    icons = make_icons()
    for size, scale in [(192, icons.MASKABLE_SCALE), (512, icons.MASKABLE_SCALE)]:
        rows = icons.pixels(size, scale)
        centre = size / 2
        inked = [
            (x + 0.5 - centre) ** 2 + (y + 0.5 - centre) ** 2
            for y, row in enumerate(rows)
            for x, value in enumerate(row)
            if value
        ]
        assert inked, "the mark is drawn"
        assert max(inked) ** 0.5 <= 0.4 * size
    # and the plain icons are opaque black around a visible mark: nothing transparent for iOS to fill
    rows = icons.pixels(180, 1.0)
    assert rows[0] == bytes(180)
    assert max(max(row) for row in rows) == icons.INK


def built() -> Path:
    if not (DIST / "sw.js").is_file():
        pytest.skip("web/dist is not built (scripts/build-web.sh)")
    return DIST


def test_the_built_worker_knows_this_builds_files_and_nothing_else() -> None:
    dist = built()
    worker = (dist / "sw.js").read_text()
    lists = [json.loads(m) for m in re.findall(r'\["/_app/[^\]]*\]', worker)]
    assert len(lists) == 1, "the shell is one list in sw.js"
    shell = lists[0]
    on_disk = sorted(f"/_app/{p.name}" for p in (dist / "_app").iterdir())
    assert shell == on_disk  # every file of the build, each once
    index = (dist / "index.html").read_text()
    for src in re.findall(r'(?:src|href)="(/_app/[^"]+)"', index):
        assert src in shell
    assert "import " not in worker
    assert "export " not in worker  # a classic script: browsers without module workers run it
