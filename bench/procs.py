"""Process plumbing for the bench: start and stop by pid, find a supervisor's child, read RSS.

A supervisor's children are found through /proc (`<pid>/stat` for the parent pid, `<pid>/cmdline`
to know the exec is done); this kernel has no `/proc/<pid>/task/<tid>/children`. Only pids that
were not there before a kill are examined, so one poll costs about one `listdir('/proc')`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent

POLL = 0.0002  # seconds between polls while waiting for a respawn


class BenchError(Exception):
    """The bench itself failed (a supervisor would not start, a respawn never came)."""


_DAEMON_TOML = """\
data_dir = "{data}"
[ports]
public = {public}
opencode = {opencode}
app = {app}
"""
_NO_OPENCODE = """\
[daemon]
health_requires = []
[services.opencode]
enabled = false
"""
_NO_CADDY = """\
[services.caddy]
enabled = false
"""


#: the one service of the daemon the main bench measures (and bench.push, for its idle RSS)
CHILD_TOML = """\
[services.child]
argv = ["sleep", "3600"]
[services.child.probe]
start_seconds = 0
[services.child.restart]
stable_after = 0
"""


@dataclass
class BareDaemon:
    """A `dancodes run` with no built-in service (or opencode alone), on free ports, its state in `base`."""

    proc: subprocess.Popen[bytes]
    base: Path
    ports: dict[str, int]
    password: str

    @property
    def logfile(self) -> Path:
        return self.base / "daemon.log"

    @property
    def data(self) -> Path:
        return self.base / "data"

    def control(self, timeout: float = 60.0) -> httpx.Client:
        """A client of its control socket, where no cookie is needed."""
        transport = httpx.HTTPTransport(uds=str(self.data / "run" / "dancodes.sock"))
        return httpx.Client(transport=transport, base_url="http://dancodes", timeout=timeout)

    @property
    def opencode_auth(self) -> tuple[str, str]:
        """opencode's server password, which the daemon made: for talking to opencode directly."""
        return ("opencode", (self.data / "secrets" / "opencode-server-password").read_text().strip())


def start_bare_daemon(
    procs: Processes,
    base: Path,
    extra_toml: str = "",
    *,
    opencode: bool = False,
    env_extra: Mapping[str, str] | None = None,
) -> BareDaemon:
    """Start it with throwaway wall secrets (the wall refuses to start without them).

    With `opencode`, its opencode service runs (and `/admin/health` waits for it); Caddy never does.
    `env_extra` is added to the daemon's environment, which its services inherit.
    """
    ports = dict(zip(("public", "opencode", "app"), free_ports(3), strict=True))
    for parent in [base, *base.parents, ROOT / "conf", ROOT, *ROOT.parents]:  # the agent must reach them
        if not parent.stat().st_mode & 0o001:
            parent.chmod(parent.stat().st_mode | 0o011)
    conf = base / "dancodes.toml"
    services = _NO_CADDY if opencode else _NO_OPENCODE + _NO_CADDY
    conf.write_text(_DAEMON_TOML.format(data=base / "data", **ports) + services + extra_toml)
    password = secrets.token_urlsafe(16)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DANCODES_PUBLIC_ORIGIN", "AUTH_SECRET_PREVIOUS", "DANCODES_DATA_DIR")
    }
    env.update(
        AUTH_PASSWORD=password, AUTH_SECRET=secrets.token_urlsafe(32), DANCODES_DATA_DIR=str(base / "data")
    )
    env.update(env_extra or {})
    proc = procs.start(
        [str(ROOT / ".venv/bin/dancodes"), "run", "--config", str(conf), "--json-logs"],
        log=base / "daemon.log",
        env=env,
        cwd=base,
    )
    return BareDaemon(proc=proc, base=base, ports=ports, password=password)


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[1])  # fields after "(comm)": state, ppid, ...


def all_pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def find_child(parent: int, match: Callable[[bytes], bool], *, known: set[int], timeout: float) -> int | None:
    """Poll until a process not in `known`, child of `parent`, has exec'd a command line `match` accepts.

    `known` is updated with the pids found not to be children of `parent`.
    """
    deadline = time.perf_counter() + timeout
    while True:
        for pid in all_pids() - known:
            if parent_pid(pid) != parent:
                known.add(pid)  # a new child of `parent` has it as parent from fork on
                continue
            line = cmdline(pid)
            if line is not None and match(line):
                return pid
        if time.perf_counter() >= deadline:
            return None
        time.sleep(POLL)


def is_sleep_child(line: bytes) -> bool:
    """The bench's supervised child: `sleep 3600`, argv[0] possibly resolved to a full path."""
    argv = line.rstrip(b"\0").split(b"\0")
    return os.path.basename(argv[0]) == b"sleep" and argv[1:] == [b"3600"]


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


class Processes:
    """Everything the bench starts; `stop_all` stops it by pid, and any descendant left behind."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )  # Ctrl-C reaches the bench only
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 8.0) -> None:
        """SIGTERM, SIGKILL after `timeout`; then SIGKILL whatever of its descendants outlived it."""
        try:
            left = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        except psutil.Error:
            left = []
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for child in left:
            with suppress(psutil.Error):
                child.kill()  # psutil checks the pid still names the same process
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, through the finally blocks that stop what a bench started."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_part(name: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """Measure one part of the bench; None (after saying why on stderr) if the bench itself failed."""
    try:
        return measure()
    except BenchError as exc:
        print(f"bench: {name} failed: {exc}", file=sys.stderr)
        return None


def part_main(
    name: str,
    measure: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    *,
    as_json: bool,
) -> int:
    """`python -m bench <name>` once its arguments are read: measure, print, and the exit status."""
    interrupt_on_sigterm()
    try:
        result = run_part(name, measure)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    if result is None:
        return 1
    print(json.dumps(result, indent=2) if as_json else render(result))
    return 0


T = TypeVar("T")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def tail(logfile: Path) -> str:
    """The last lines a daemon wrote, on one line: why it exited."""
    lines = logfile.read_text(errors="replace").strip().splitlines() if logfile.exists() else []
    return " | ".join(lines[-5:]) or "(no output)"


def wait_for(
    what: str, check: Callable[[], T | None], daemon: BareDaemon, timeout: float, interval: float = 0.1
) -> T:
    """Poll `check()` until it returns something truthy; fail if the daemon exits or time runs out."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise BenchError(f"dancodes exited with {daemon.proc.returncode}: {tail(daemon.logfile)}")
        try:
            result = check()
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if result:
                return result
            last = result
        time.sleep(interval)
    raise BenchError(f"{what}: not after {timeout:g}s (last: {last!r}; log {daemon.logfile})")


def start_with_opencode(
    procs: Processes, tmp: Path, repo: tuple[str, str], provider_url: str, extra_toml: str = ""
) -> BareDaemon:
    """A daemon with opencode, its provider at `provider_url`, and a bare repo `owner/name` under `tmp` as
    its GitHub. The daemon's own GC, idle-instance janitor and memory ceiling stay off: only the bench's
    requests touch opencode's instances, and nothing restarts it under them. Its XDG dirs are seeded, so
    opencode installs no plugin from the network."""
    from tests.gitutil import make_remote
    from tests.llm import opencode_config, opencode_xdg
    from tests.stack import without_ceiling

    try:
        make_remote(tmp / "remotes", tmp / "seed", *repo)
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"making the bare repo failed: {exc.stderr.strip()}") from None
    base = tmp / "daemon"
    base.mkdir()
    remote_url = f"file://{tmp / 'remotes'}/{{owner}}/{{name}}.git"
    extra = (
        f"[git]\nremote_url = {json.dumps(remote_url)}\n"
        "[gc]\ninterval_minutes = 0\ndispose_idle_minutes = 0\n" + without_ceiling(extra_toml)
    )
    opencode_xdg(base / "data" / "opencode")
    env = {"OPENCODE_CONFIG_CONTENT": opencode_config(provider_url)}
    return start_bare_daemon(procs, base, extra, opencode=True, env_extra=env)
