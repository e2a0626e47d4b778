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
into place once the binary answers `--version` with the version asked for; a partial one left by a killed
daemon is removed on the next try.

Other versions (`dancodes-ctl opencode update`, supervisor.opencode_versions) land there the same way, with
`npm install opencode-ai@<version> --save-exact`. Which one runs is `opencode-versions/selected.json`
(`Selection`: the current and the previous); without it, or when its current is not installed whole, the pin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec
import structlog
import trio

from . import files
from .errors import InstallError, UpdateRefused
from .layout import Layout
from .reaper import Reaper
from .spawn import run, spawn

log = structlog.get_logger("dancodes.opencode")

PACKAGE = "opencode-ai"
STORE = "opencode-versions"
NPM_FLAGS = ["--no-audit", "--no-fund", "--loglevel=http", "--foreground-scripts", "--update-notifier=false"]
SELECTION = "selected.json"
#: The contract check's scratch folders in the data dir (supervisor.opencode_contract): `<prefix><pid>`.
CHECK_SCRATCH = "opencode-check."

#: An exact semver (2.0.0): three numbers without leading zeros, then an optional pre-release and build.
#: Anything npm would read as a range or a tag (^1.2, 1.x, latest, >=1) is not one.
_NUMBER = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
EXACT_VERSION = re.compile(
    rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}(?:-{_IDENT}(?:\.{_IDENT})*)?(?:\+{_IDENT}(?:\.{_IDENT})*)?"
)


def exact_version(text: str) -> str:
    """`text` when it is one exact version (like 1.18.32), else UpdateRefused (400) saying so."""
    if len(text) > 64 or not EXACT_VERSION.fullmatch(text):
        shown = text[:64] + ("…" if len(text) > 64 else "")
        raise UpdateRefused(
            f"opencode version {shown!r} is not an exact version like 1.18.32 (no ranges or tags)", status=400
        )
    return text


class Selection(msgspec.Struct, forbid_unknown_fields=False):
    """Which opencode the daemon runs (`current`) and the one before it (`previous`, for rollback)."""

    current: str | None = None
    previous: str | None = None


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

    def versions(self) -> list[str]:
        """The versions the store holds whole, in the order of their numbers."""
        if not self.root.is_dir():
            return []
        found = [
            p.name for p in self.root.iterdir() if EXACT_VERSION.fullmatch(p.name) and self.bin_dir(p.name)
        ]
        return sorted(found, key=version_key)

    @property
    def selection_file(self) -> Path:
        return self.root / SELECTION

    def selection(self) -> Selection:
        """The recorded choice; an empty one when none was made (or it cannot be read: logged)."""
        found = files.read_state(self.selection_file, Selection, "opencode_selection_unreadable")
        return found if found is not None else Selection()

    def select(self, selection: Selection) -> None:
        """Record the choice, whole (readable by all: it holds nothing secret)."""
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        files.write_whole(self.selection_file, msgspec.json.encode(selection).decode() + "\n", mode=0o644)

    def prune(self, keep: set[str]) -> list[str]:
        """Remove every version but `keep` (each is ~350 MB); the ones removed."""
        gone = []
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.is_dir() and EXACT_VERSION.fullmatch(path.name) and path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
                    gone.append(path.name)
        if gone:
            log.info("opencode_versions_removed", versions=sorted(gone, key=version_key))
        return gone

    def discard_partial(self) -> None:
        if self.root.is_dir():
            for leftover in self.root.glob("*.partial-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    async def install_pin(
        self, pin_dir: Path, version: str, reaper: Reaper, environ: Mapping[str, str]
    ) -> Path:
        """`npm ci` of the pin in `pin_dir` into the store; the bin folder of the installed version."""

        def prepare(work: Path) -> None:
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(pin_dir / name, work / name)

        return await self._install(version, prepare, ["ci"], reaper, environ)

    async def install_version(self, version: str, reaper: Reaper, environ: Mapping[str, str]) -> Path:
        """`npm install opencode-ai@<version> --save-exact` into a fresh prefix of the store; its bin."""
        exact_version(version)

        def prepare(work: Path) -> None:
            # opencode-ai's postinstall puts the platform's binary in place: allowed by name, as the pin does
            manifest = {"name": "dancodes-opencode", "private": True, "allowScripts": {PACKAGE: True}}
            (work / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")

        return await self._install(
            version, prepare, ["install", f"{PACKAGE}@{version}", "--save-exact"], reaper, environ
        )

    async def _install(
        self,
        version: str,
        prepare: Callable[[Path], None],
        npm_args: list[str],
        reaper: Reaper,
        environ: Mapping[str, str],
    ) -> Path:
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
            prepare(work)
            log.info("opencode_installing", version=version, into=str(self.prefix(version)), npm=npm)
            started = time.monotonic()
            await _npm(reaper, [npm, *npm_args, *NPM_FLAGS], work, environ)
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


def installed_bin(install: Layout, store: Store, version: str) -> Path | None:
    """Where `version` is installed whole: the checkout's own `npm ci` of the pin, else the store."""
    if install.node_bin is not None and package_version(install.node_bin.parent.parent) == version:
        return install.node_bin
    return store.bin_dir(version)


async def ensure_selected(
    install: Layout, data_dir: Path, reaper: Reaper, environ: Mapping[str, str]
) -> tuple[str, Path]:
    """The opencode to run, and the folder holding it: the selected current version when it is installed
    whole (`dancodes-ctl opencode update` chose it), else the pin (`ensure_pinned`)."""
    store = Store(data_dir)
    chosen = store.selection().current
    if chosen is not None:
        found = installed_bin(install, store, chosen)
        if found is not None:
            return chosen, found
        log.warning("opencode_selected_missing", version=chosen, falling_back_to="the pin")
    return pinned_version(install.opencode_pin), await ensure_pinned(install, data_dir, reaper, environ)


async def latest_version(reaper: Reaper, environ: Mapping[str, str]) -> str:
    """The registry's latest opencode-ai (`npm view opencode-ai version`)."""
    npm = shutil.which("npm", path=environ.get("PATH", os.defpath))
    if npm is None:
        raise InstallError("npm is not installed: name the opencode version to update to, or install npm")
    with trio.move_on_after(120):
        with tempfile.TemporaryDirectory(prefix="dancodes-npm-") as scratch:
            done = await run(reaper, [npm, "view", PACKAGE, "version"], env=dict(environ), cwd=scratch)
        text = done.stdout.decode(errors="replace").strip()
        if done.status.success and EXACT_VERSION.fullmatch(text):
            return text
        last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [done.status.describe()]
        raise InstallError(f"npm view {PACKAGE} version failed: {last[0][:300]}")
    raise InstallError(f"npm view {PACKAGE} version did not answer within 120s")


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """For sorting: the numbers, then a release after its pre-releases."""
    core, _, rest = version.partition("+")[0].partition("-")
    return tuple(int(n) for n in core.split(".")), 0 if rest else 1, rest


async def ensure_pinned(install: Layout, data_dir: Path, reaper: Reaper, environ: Mapping[str, str]) -> Path:
    """Make sure the pinned opencode can be run; the folder holding it, to look in before $PATH."""
    version = pinned_version(install.opencode_pin)
    store = Store(data_dir)
    found = installed_bin(install, store, version)
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
        raise InstallError(f"npm installed opencode {got or '(none)'}, but {version} was asked for")


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
            nursery.start_soon(read_lines, child.stdout, keep)
            nursery.start_soon(read_lines, child.stderr, keep)
        status = await child.wait()
    except BaseException:
        child.signal_group(signal.SIGKILL)
        raise
    if not status.success:
        last = " | ".join(tail[-3:]) or status.describe()
        raise InstallError(f"{Path(argv[0]).name} {' '.join(argv[1:2])} failed ({status.describe()}): {last}")


async def read_lines(stream: trio.lowlevel.FdStream, each: Callable[[str], None]) -> None:
    """Call `each` with each non-blank line of `stream` (its first 500 characters), until it ends."""
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
