"""The code stays ruff-clean, ruff-formatted and mypy --strict clean; these run the real tools."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    out = run(str(BIN / "ruff"), "check", "supervisor", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format() -> None:
    out = run(str(BIN / "ruff"), "format", "--check", "supervisor", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict() -> None:
    out = run(str(BIN / "mypy"))  # files and strictness come from pyproject.toml
    assert out.returncode == 0, out.stdout + out.stderr


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    """Each module of the package and the package modules it imports: at the top, under TYPE_CHECKING
    or inside a function alike (a module imported late is still a module depended on); and the imports
    that name the package absolutely, which an install (where it is `dancodes`) could not resolve."""
    root = ROOT / "supervisor"
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in root.rglob("*.py")
    }

    def owner(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    absolute: list[str] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                found |= {
                    owner(f"{module}.{a.name}") if f"{module}.{a.name}" in modules else owner(module)
                    for a in node.names
                }
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "supervisor":
                absolute.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.Import):
                absolute += [
                    f"{path.relative_to(ROOT)}:{node.lineno}"
                    for a in node.names
                    if a.name.split(".")[0] == "supervisor"
                ]
        graph[name] = found - {name, "supervisor"}
    return graph, absolute


def test_the_package_imports_itself_relatively() -> None:
    """Installed, the package is `dancodes` (PyPI's `supervisor` is supervisord's): an absolute
    `supervisor.` import would work in the checkout and fail in the install."""
    assert _imports()[1] == []


def test_the_package_imports_form_no_circle() -> None:
    """Layers depend one way (the API sees the daemon through `supervisor.typing.AdminContext`): a module
    that reaches itself through its imports names the circle."""
    graph = _imports()[0]
    assert "supervisor.daemon" in graph["supervisor.cli"]  # the walk sees imports made inside functions
    through = sorted(m for m in graph if m.startswith("supervisor.api") and "supervisor.daemon" in graph[m])
    assert not through, f"the API imports the daemon: {through}"

    def circle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            module, trail = stack.pop()
            for dep in sorted(graph.get(module, ())):
                if dep == start:
                    return [*trail, start]
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*trail, dep]))
        return None

    circles = [c for m in sorted(graph) if (c := circle_from(m))]
    assert not circles, "import circle: " + " -> ".join(circles[0])
