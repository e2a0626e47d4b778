"""The web app's size budget (scripts/web-budget.py, run by scripts/build-web.sh): at most 60 KB of JS + CSS,
gzipped, for the page, and for each lazily loaded chunk on its own (the dashboard). Checked on the real build,
and on made-up builds that must fail: a page over, a lazy chunk over, one a shared chunk pushes over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "web-budget.py"
DIST = ROOT / "web" / "dist"
BUDGET = 60 * 1024


def budget(dist: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(dist), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def sizes(out: str) -> dict[str, float]:
    """{page: KB} from the script's lines "name: 12.3 KB gzipped (files)"."""
    return {line.split(": ")[0]: float(line.split(": ")[1].split()[0]) for line in out.splitlines()}


def test_the_built_app_has_its_page_and_the_lazy_dashboard_each_within_budget() -> None:
    if not (DIST / ".vite" / "manifest.json").is_file():
        pytest.skip("web/dist is not built (scripts/build-web.sh)")
    done = budget(DIST)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    measured = sizes(done.stdout)
    assert list(measured)[:1] == ["index.html"]
    assert "src/Dashboard.tsx" in measured, done.stdout
    assert all(0 < kb <= 60 for kb in measured.values()), done.stdout
    page = next(line for line in lines if line.startswith("index.html"))
    lazy = next(line for line in lines if line.startswith("src/Dashboard.tsx"))
    assert "Dashboard-" not in page  # the page does not carry the dashboard
    assert "index-" not in lazy  # nor is the page counted again in the chunk
    # what the page's own index.html loads is what was measured as the page
    html = (DIST / "index.html").read_text()
    for name in page.split("(")[1].rstrip(")").split(", "):
        assert f"/{name}" in html, f"{name} is counted in the page but index.html does not load it"


def write(dist: Path, name: str, size: int) -> str:
    """A file of `size` random bytes: gzip cannot shrink it, so its gzipped size is about `size`."""
    (dist / name).parent.mkdir(parents=True, exist_ok=True)
    (dist / name).write_bytes(os.urandom(size))
    return name


def made_up(tmp_path: Path, manifest: dict[str, Any]) -> Path:
    (tmp_path / ".vite").mkdir()
    (tmp_path / ".vite" / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_each_page_is_held_to_the_budget_on_its_own(tmp_path: Path) -> None:
    under = BUDGET // 2 + 1024  # the two together are over 60 KB, each is not
    dist = made_up(
        tmp_path,
        {
            "index.html": {
                "file": write(tmp_path, "_app/index.js", under),
                "css": [write(tmp_path, "_app/index.css", 1024)],
                "isEntry": True,
                "dynamicImports": ["src/Dashboard.tsx"],
            },
            "src/Dashboard.tsx": {"file": write(tmp_path, "_app/Dashboard.js", under)},
        },
    )
    done = budget(dist)
    assert done.returncode == 0, done.stderr
    assert set(sizes(done.stdout)) == {"index.html", "src/Dashboard.tsx"}
    # the same files against a smaller budget: both over, each named on its own line
    tight = budget(dist, "--budget", str(BUDGET // 2))
    assert tight.returncode == 1
    errors = tight.stderr.splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("web-budget.py: error: index.html is ")
    assert errors[1].startswith("web-budget.py: error: src/Dashboard.tsx is ")


def test_a_page_over_the_budget_fails(tmp_path: Path) -> None:
    dist = made_up(
        tmp_path,
        {"index.html": {"file": write(tmp_path, "_app/index.js", BUDGET + 2048), "isEntry": True}},
    )
    done = budget(dist)
    assert done.returncode == 1
    assert "index.html is 6" in done.stderr
    assert "over the 60 KB budget" in done.stderr


def test_a_lazy_chunk_over_the_budget_fails_even_when_the_page_is_small(tmp_path: Path) -> None:
    dist = made_up(
        tmp_path,
        {
            "index.html": {
                "file": write(tmp_path, "_app/index.js", 2048),
                "isEntry": True,
                "dynamicImports": ["src/Dashboard.tsx"],
            },
            "src/Dashboard.tsx": {
                "file": write(tmp_path, "_app/Dashboard.js", BUDGET - 4096),
                "imports": ["_shared.js"],  # a chunk the page does not load: the dashboard brings it
                "css": [write(tmp_path, "_app/Dashboard.css", 2048)],
            },
            "_shared.js": {"file": write(tmp_path, "_app/shared.js", 4096)},
        },
    )
    done = budget(dist)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        next(
            line
            for line in done.stderr.splitlines()
            if line.startswith("web-budget.py: error: src/Dashboard.tsx")
        )
    ]
    assert "_app/shared.js" in done.stdout.splitlines()[1]


def test_a_shared_chunk_the_page_already_loads_is_not_counted_again(tmp_path: Path) -> None:
    dist = made_up(
        tmp_path,
        {
            "index.html": {
                "file": write(tmp_path, "_app/index.js", 2048),
                "imports": ["_shared.js"],
                "isEntry": True,
                "dynamicImports": ["src/Dashboard.tsx"],
            },
            "src/Dashboard.tsx": {
                "file": write(tmp_path, "_app/Dashboard.js", 2048),
                "imports": ["_shared.js"],
            },
            "_shared.js": {"file": write(tmp_path, "_app/shared.js", BUDGET - 8192)},
        },
    )
    done = budget(dist)
    assert done.returncode == 0, done.stderr
    page, lazy = done.stdout.splitlines()
    assert "_app/shared.js" in page
    assert "_app/shared.js" not in lazy


def test_a_missing_build_is_one_line(tmp_path: Path) -> None:
    done = budget(tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert "cannot read the build's manifest" in done.stderr
