"""The opencode this install pins: found, or installed with npm into the data dir on first start.

The pin is the package-lock.json beside the install's package.json (in a wheel, `dancodes/_opencode`): an
exact version and the integrity hash of every tarball. Where the binary comes from, first found:

1. a checkout's `node_modules` (its own `npm ci` of the pin: `make install`, the Dockerfile);
2. the store, `<data_dir>/opencode-versions/<version>/`: an npm prefix per version, the daemon's own
   (the agent may run it, never change it: its opencode state is `<data_dir>/opencode`, a sibling);
3. $PATH, when `opencode --version` there says the pinned version;
4. else `npm ci` of the pin into the store, its lines logged as it goes; without npm, or when npm fails,
   an `InstallError` that says what to do.

A version lands in the store whole or not at all: npm works in `<version>.partial-<pid>`, which is renamed
into place once the binary answers `--version` with the pinned version; a partial one left by a killed daemon
is removed on the next try.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
import trio

from .errors import InstallError
from .layout import Layout
from .reaper import Reaper
from .spawn import run, spawn

log = structlog.get_logger("dancodes.opencode")

PACKAGE = "opencode-ai"
STORE = "opencode-versions"
NPM_FLAGS = ["--no-audit", "--no-fund", "--loglevel=http", "--foreground-scripts", "--update-notifier=false"]


def pinned_version(pin_dir: Path) -> str:
    """The exact opencode version `pin_dir/package-lock.json` pins."""
    lock = pin_dir / "package-lock.json"
    try:
        data = json.loads(lock.read_text())
        version = data["packages"][f"node_modules/{PACKAGE}"]["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InstallError(f"cannot read the pinned opencode version from {lock}: {exc}") from None
    if not isinstance(version, str) or not version:
        raise InstallError(f"{lock} pins no opencode version")
    return version


def package_version(prefix: Path) -> str | None:
    """The opencode-ai version installed in the npm prefix `prefix`, when its binary is there."""
    package = prefix / "node_modules" / PACKAGE
    if not os.access(prefix / "node_modules" / ".bin" / "opencode", os.X_OK):
        return None
    try:
        version = json.loads((package / "package.json").read_text()).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


class Store:
    """`<data_dir>/opencode-versions`: one npm prefix per opencode version."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / STORE

    def prefix(self, version: str) -> Path:
        return self.root / version

    def bin_dir(self, version: str) -> Path | None:
        """The folder holding `opencode` of `version`, when the store has it whole."""
        prefix = self.prefix(version)
        return prefix / "node_modules" / ".bin" if package_version(prefix) == version else None

    def discard_partial(self) -> None:
        if self.root.is_dir():
            for leftover in self.root.glob("*.partial-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    async def install_pin(
        self, pin_dir: Path, version: str, reaper: Reaper, environ: Mapping[str, str]
    ) -> Path:
        """`npm ci` of the pin in `pin_dir` into the store; the bin folder of the installed version."""
        npm = shutil.which("npm", path=environ.get("PATH", os.defpath))
        if npm is None:
            raise InstallError(
                f"opencode {version} is needed and npm is not installed to fetch it: install Node.js with "
                f"npm (Debian: apt-get install npm), or put opencode {version} on PATH"
            )
        self.discard_partial()
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        work = self.root / f"{version}.partial-{os.getpid()}"
        work.mkdir(mode=0o755)
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(pin_dir / name, work / name)
            log.info("opencode_installing", version=version, into=str(self.prefix(version)), npm=npm)
            started = time.monotonic()
            await _npm(reaper, [npm, "ci", *NPM_FLAGS], work, environ)
            await _finish_postinstall(reaper, work, environ)
            await _check_version(reaper, work, version, environ)
            shutil.rmtree(self.prefix(version), ignore_errors=True)
            work.rename(self.prefix(version))
        except BaseException:
            with trio.CancelScope(shield=True):
                shutil.rmtree(work, ignore_errors=True)
            raise
        log.info("opencode_installed", version=version, seconds=round(time.monotonic() - started, 1))
        bin_dir = self.bin_dir(version)
        assert bin_dir is not None  # just renamed into place whole
        return bin_dir


async def ensure_pinned(install: Layout, data_dir: Path, reaper: Reaper, environ: Mapping[str, str]) -> Path:
    """Make sure the pinned opencode can be run; the folder holding it, to look in before $PATH."""
    version = pinned_version(install.opencode_pin)
    if install.node_bin is not None and package_version(install.node_bin.parent.parent) == version:
        return install.node_bin
    store = Store(data_dir)
    found = store.bin_dir(version)
    if found is not None:
        return found
    on_path = shutil.which("opencode", path=environ.get("PATH", os.defpath))
    if on_path is not None:
        got = await version_of(reaper, on_path, environ)
        if got == version:
            log.info("opencode_from_path", version=version, path=on_path)
            return Path(on_path).parent
        log.info("opencode_on_path_not_pinned", path=on_path, version=got, pinned=version)
    return await store.install_pin(install.opencode_pin, version, reaper, environ)


async def version_of(reaper: Reaper, exe: str, environ: Mapping[str, str]) -> str | None:
    """What `exe --version` prints, run with a scratch HOME (it makes its XDG folders on any start)."""
    with tempfile.TemporaryDirectory(prefix="dancodes-opencode-") as scratch:
        env = {"PATH": environ.get("PATH", os.defpath), "HOME": scratch, "OPENCODE_DISABLE_AUTOUPDATE": "1"}
        with trio.move_on_after(30):
            done = await run(reaper, [exe, "--version"], env=env, cwd=scratch)
            if done.status.success:
                return done.stdout.decode(errors="replace").strip() or None
    return None


async def _check_version(reaper: Reaper, prefix: Path, version: str, environ: Mapping[str, str]) -> None:
    got = await version_of(reaper, str(prefix / "node_modules" / ".bin" / "opencode"), environ)
    if got != version:
        raise InstallError(f"npm installed opencode {got or '(none)'}, but the pin is {version}")


async def _finish_postinstall(reaper: Reaper, prefix: Path, environ: Mapping[str, str]) -> None:
    """opencode-ai's postinstall copies the platform's binary into place; an npm whose policy skipped it
    (ignore-scripts) leaves no binary, so run it by hand, as scripts/install.sh does."""
    if os.access(prefix / "node_modules" / ".bin" / "opencode", os.X_OK):
        return
    node = shutil.which("node", path=environ.get("PATH", os.defpath)) or "node"
    await _npm(reaper, [node, "postinstall.mjs"], prefix / "node_modules" / PACKAGE, environ)


async def _npm(reaper: Reaper, argv: list[str], cwd: Path, environ: Mapping[str, str]) -> None:
    """Run `argv`, logging each line it prints as it comes (the progress of a first start); InstallError
    with its last lines when it fails."""
    child = spawn(reaper, argv, env=dict(environ), cwd=str(cwd))
    tail: list[str] = []

    def keep(line: str) -> None:
        tail.append(line)
        del tail[:-5]
        log.info("opencode_install_progress", line=line)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_lines, child.stdout, keep)
            nursery.start_soon(_lines, child.stderr, keep)
        status = await child.wait()
    except BaseException:
        child.signal_group(signal.SIGKILL)
        raise
    if not status.success:
        last = " | ".join(tail[-3:]) or status.describe()
        raise InstallError(f"{Path(argv[0]).name} {' '.join(argv[1:2])} failed ({status.describe()}): {last}")


async def _lines(stream: trio.lowlevel.FdStream, each: Callable[[str], None]) -> None:
    pending = b""
    async with stream:
        while chunk := await stream.receive_some():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if text := line.decode(errors="replace").strip():
                    each(text[:500])
    if text := pending.decode(errors="replace").strip():
        each(text[:500])
