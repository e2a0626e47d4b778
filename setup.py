"""The wheel carries what the daemon reads at run time beside its code: conf/ as `dancodes/_conf`,
the built web app (web/dist) as `dancodes/_web`, and the opencode pin (package.json,
package-lock.json) as `dancodes/_opencode`.

Everything else is declared in pyproject.toml. An editable install (the checkout's .venv) copies
nothing: there the package finds them beside itself (supervisor/layout.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {
    "_conf": [ROOT / "conf"],
    "_web": [ROOT / "web" / "dist"],
    "_opencode": [ROOT / "package.json", ROOT / "package-lock.json"],
}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        if not (ROOT / "web" / "dist" / "index.html").is_file():
            raise SystemExit(
                "dancodes: web/dist is missing: build the web app first (scripts/build-web.sh, or make wheel)"
            )
        package = Path(self.build_lib) / "dancodes"
        for name, sources in SHIPPED.items():
            target = package / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for source in sources:
                if source.is_dir():
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, target / source.name)


# supervisor/ is installed as `dancodes`; its subpackages are found, not listed, so that an editable install
# of the manifests alone (the Dockerfile's install layer: supervisor/__init__.py and no subpackage) works
PACKAGES = ["dancodes", *(f"dancodes.{name}" for name in find_packages(str(ROOT / "supervisor")))]

setup(packages=PACKAGES, cmdclass={"build_py": BuildWithData})
