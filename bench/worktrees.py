"""`python -m bench worktrees [--json]`: a new chat's worktree against `git worktree add`, on a big repo.

A new chat's first prompt waits on `POST /admin/worktrees`. This builds a repository of N files
(`--worktree-files`, default 50,000, in directories of 100) as a bare `file://` remote, starts the
real daemon (no opencode, no Caddy: the session move that follows the checkout is not timed) and
clones the repo through it. Then, for `--worktree-rounds` rounds (default 10), worktrees accumulate:

    dancodes  `POST /admin/worktrees` on the control socket: a fetch, the branch, the checkout, the
              answer; its CPU is the daemon's, the git it runs included, less the health polls' (below)
    git       `git worktree add -b <branch> <path> <commit>` of the same commit, in a `git clone` of the
              same remote (no fetch), one process as a user would run it

The two take turns going first. A thread polls `GET /admin/health` every 50 ms throughout: its
slowest answer during a create is how long the daemon stood still while making the worktree
(libgit2 held Python's GIL through its checkout). It prints each round's wall and CPU seconds, the
ratios of the totals, and the first rounds against the last: a create that slows down as worktrees
accumulate shows as a CPU ratio to git that grows.

`--dir D` says where the repo and the worktrees go. By default that is /dev/shm when it is a tmpfs
with room to spare (about 5 KiB a file a checkout: 2.5 GB at the defaults, for about a minute), else
the temp dir. On a disk both sides mostly wait for the writeback of what earlier rounds wrote, which
varies too much to compare them (on the shared 2-CPU machine this was written on, one such run took
11 minutes, the same create 1.3-4.4 s of CPU). Everything started here is stopped here, by pid, also
on error or Ctrl-C; the repository and the worktrees go with the temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.procs import (
    BareDaemon,
    BenchError,
    Processes,
    log,
    part_main,
    run_part,
    start_bare_daemon,
    wait_for,
)

REPO = "acme/big"
START_TIMEOUT = 30.0
CLONE_TIMEOUT = 300.0
POLL = 0.05  # seconds between health checks
EDGE = 3  # rounds compared at each end
TARGET_RATIO = 1.0
TARGET_GROWTH = 1.25  # the CPU ratio to git: the last rounds' median over the first rounds'


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"git {args[0]} failed: {' '.join(done.stderr.decode(errors='replace').split())}")
    return done.stdout.decode().strip()


def make_repo(bare: Path, files: int) -> None:
    """A bare repo whose one commit holds `files` small text files, 100 to a directory, made with
    `git fast-import` (seconds, where a working tree and `git add` would take a minute)."""
    git("init", "-q", "--bare", "-b", "main", str(bare))
    stream = [b"commit refs/heads/main\ncommitter Bench <bench@localhost> 1700000000 +0000\ndata 5\nbig\n\n"]
    stream.append(b"M 100644 inline README.md\ndata 14\n# a big repo\n\n")
    for i in range(files):
        body = f"file {i}\n".encode() * 8
        path = f"src/d{i // 1000:03d}/s{i // 100 % 10}/f{i:06d}.txt"
        stream.append(f"M 100644 inline {path}\ndata {len(body)}\n".encode() + body + b"\n")
    git("fast-import", "--quiet", cwd=bare, stdin=b"".join(stream))
    subprocess.run(["chmod", "-R", "a+rX", str(bare)], check=True)  # the agent's user fetches from it


@dataclass
class Stalls:
    """Polls the daemon's health on its own connection and keeps every answer's (start, seconds)."""

    daemon: BareDaemon
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Stalls:
        self._thread = threading.Thread(target=self._poll, name="health", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        with self.daemon.control(CLONE_TIMEOUT) as client:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):  # still counted: the daemon did not answer
                    client.get("/admin/health")
                self.samples.append((t0, time.perf_counter() - t0))
                self._stop.wait(POLL)

    def count(self, start: float, end: float) -> int:
        """How many polls were sent between `start` and `end`."""
        return sum(1 for sent, _ in list(self.samples) if start <= sent <= end)

    def cpu_per_poll(self, daemon: psutil.Process, seconds: float = 1.0) -> float:
        """The daemon's CPU per answer to a poll, measured while it does nothing else: the share of
        the polls in a create's CPU, which is not the create's."""
        c0, t0 = _cpu(daemon), time.perf_counter()
        time.sleep(seconds)
        c1, t1 = _cpu(daemon), time.perf_counter()
        return (c1 - c0) / max(1, self.count(t0, t1))

    def worst(self, start: float, end: float) -> float:
        """The slowest answer to a poll sent between `start` and `end`, in seconds."""
        return max((took for sent, took in list(self.samples) if start <= sent <= end), default=0.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _wait_healthy(daemon: BareDaemon, admin: httpx.Client) -> None:
    healthy = lambda: admin.get("/admin/health").status_code == 200  # noqa: E731
    wait_for("dancodes healthy", healthy, daemon, START_TIMEOUT, interval=0.05)


def _expect(response: httpx.Response, what: str, status: int) -> Any:
    if response.status_code != status:
        raise BenchError(f"{what} answered {response.status_code}, not {status}: {response.text[:300]}")
    return response.json()


def choose_dir(files: int, rounds: int) -> str | None:
    """/dev/shm if it is a tmpfs with twice the room the run needs, else None (the temp dir)."""
    need = files * (2 * rounds + 3) * 5 * 1024  # every checkout, the clone, the peer's clone, the repo
    try:
        with open("/proc/mounts") as mounts:
            tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts)
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return None
    return "/dev/shm" if tmpfs and free >= 2 * need else None


def measure(files: int, rounds: int, where: str | None) -> dict[str, Any]:
    where = where if where is not None else choose_dir(files, rounds)
    with tempfile.TemporaryDirectory(prefix="dancodes-bench-wt-", dir=where) as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes()
        stalls: Stalls | None = None
        try:
            log(f"a {files}-file repo as a bare file:// remote, in {tmp.parent}")
            remotes = tmp / "remotes"
            bare = remotes / f"{REPO}.git"
            bare.parent.mkdir(parents=True)
            make_repo(bare, files)
            base = tmp / "daemon"
            base.mkdir()
            remote_url = f"file://{remotes}/{{owner}}/{{name}}.git"
            extra = f"[git]\nremote_url = {json.dumps(remote_url)}\n[gc]\ninterval_minutes = 0\n"
            daemon = start_bare_daemon(procs, base, extra)
            with daemon.control(CLONE_TIMEOUT) as admin:
                _wait_healthy(daemon, admin)
                log("cloning it through the daemon, and with git for the peer")
                t0 = time.perf_counter()
                _expect(admin.post("/admin/repos/clone", json={"repo": REPO, "wait": True}), "clone", 201)
                clone_s = time.perf_counter() - t0
                peer = tmp / "peer"
                t0 = time.perf_counter()
                git("clone", "-q", f"file://{bare}", str(peer))
                peer_clone_s = time.perf_counter() - t0
                commit = git("rev-parse", "HEAD", cwd=peer)
                daemon_proc = psutil.Process(daemon.proc.pid)
                stalls = Stalls(daemon).start()
                per_poll = stalls.cpu_per_poll(daemon_proc)
                ours: list[Took] = []
                theirs: list[Took] = []
                worst: list[float] = []
                for i in range(rounds):
                    peer_path = tmp / "peer-worktrees" / f"wt-{i}"
                    if i % 2:
                        theirs.append(_git_add(peer, peer_path, f"bench/{i}", commit))
                    made = _create(admin, daemon_proc, f"bench-{i}", commit)
                    polls = stalls.count(made.start, made.start + made.wall)
                    ours.append(dataclasses.replace(made, cpu=made.cpu - polls * per_poll))
                    worst.append(stalls.worst(made.start, made.start + made.wall))
                    if not i % 2:
                        theirs.append(_git_add(peer, peer_path, f"bench/{i}", commit))
                    log(
                        f"round {i + 1}/{rounds}: dancodes {ours[-1].wall:.2f} s "
                        f"(CPU {ours[-1].cpu:.2f}), git {theirs[-1].wall:.2f} s (CPU {theirs[-1].cpu:.2f})"
                    )
        finally:
            if stalls is not None:
                stalls.close()
            procs.stop_all()  # before the temp dir goes: the daemon's socket and data live there
            log("removing the repo and the worktrees")
    result = report(files, rounds, ours, theirs, worst, clone_s, peer_clone_s)
    return {"dir": str(tmp.parent), "poll_cpu_ms": per_poll * 1000, **result}


@dataclass(frozen=True)
class Took:
    wall: float  # seconds, as the client waited
    cpu: float  # seconds of CPU, user and system, of the process and the children it waited for
    start: float  # perf_counter() when it was sent


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


def _create(admin: httpx.Client, daemon: psutil.Process, session_id: str, commit: str) -> Took:
    """`POST /admin/worktrees` for a new chat; its CPU is the daemon's, git's included (the reaper
    has collected git by the time the answer comes), the health polls' share not yet taken out."""
    c0, t0 = _cpu(daemon), time.perf_counter()
    made = admin.post("/admin/worktrees", json={"repo": REPO, "session_id": session_id})
    took = Took(time.perf_counter() - t0, _cpu(daemon) - c0, t0)
    info = _expect(made, "POST /admin/worktrees", 201)["worktree"]
    if not commit.startswith(info["head"] or "-") or info["dirty"]:
        raise BenchError(f"worktree {session_id} is at {info['head']} (dirty: {info['dirty']}), not {commit}")
    return took


def _git_add(peer: Path, path: Path, branch: str, commit: str) -> Took:
    me = psutil.Process()
    c0, t0 = _cpu(me), time.perf_counter()
    git("worktree", "add", "-q", "-b", branch, str(path), commit, cwd=peer)
    return Took(time.perf_counter() - t0, _cpu(me) - c0, t0)


def report(
    files: int,
    rounds: int,
    ours: list[Took],
    theirs: list[Took],
    worst: list[float],
    clone_s: float,
    peer_clone_s: float,
) -> dict[str, Any]:
    edge = min(EDGE, max(1, rounds // 2))

    def ends(samples: list[float]) -> dict[str, float]:
        first, last = statistics.median(samples[:edge]), statistics.median(samples[-edge:])
        return {"first": first, "last": last, "growth": last / first}

    def compare(a: list[float], b: list[float]) -> dict[str, Any]:
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        return {
            "dancodes": [round(x, 4) for x in a],
            "git": [round(x, 4) for x in b],
            "ratio": [round(x, 4) for x in ratios],
            "median": {"dancodes": statistics.median(a), "git": statistics.median(b)},
            "ratio_of_totals": sum(a) / sum(b),
            "first_vs_last": {"dancodes": ends(a), "git": ends(b), "ratio": ends(ratios)},
        }

    wall = compare([t.wall for t in ours], [t.wall for t in theirs])
    cpu = compare([t.cpu for t in ours], [t.cpu for t in theirs])
    ratio, cpu_ratio = wall["ratio_of_totals"], cpu["ratio_of_totals"]
    # against git's, in CPU: the machine slows every writer down as pages pile up, git as much as us
    growth = cpu["first_vs_last"]["ratio"]["growth"]
    return {
        "files": files,
        "rounds": rounds,
        "edge_rounds": edge,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "daemon_stall_ms": {
            "worst_per_round": [round(x * 1000, 1) for x in worst],
            "max": max(worst) * 1000,
            "median": statistics.median(worst) * 1000,
        },
        "clone_seconds": {"dancodes": clone_s, "git": peer_clone_s},
        "targets": {
            "ratio": {"value": ratio, "limit": TARGET_RATIO, "pass": ratio <= TARGET_RATIO},
            "cpu_ratio": {"value": cpu_ratio, "limit": TARGET_RATIO, "pass": cpu_ratio <= TARGET_RATIO},
            "flat": {"value": growth, "limit": TARGET_GROWTH, "pass": growth <= TARGET_GROWTH},
        },
    }


def render(r: dict[str, Any]) -> str:
    def verdict(name: str) -> str:
        return "PASS" if r["targets"][name]["pass"] else "MISS"

    w, c, st, e = r["wall_seconds"], r["cpu_seconds"], r["daemon_stall_ms"], r["edge_rounds"]
    out = [
        f"new worktree: {r['files']} files, {r['rounds']} worktrees in a row, in {r['dir']}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "",
        "seconds per worktree: dancodes POST /admin/worktrees (its fetch included), git worktree add",
        f"  {'':>6} {'---------- wall ----------':>27} {'----------- CPU ----------':>27} {'daemon':>8}",
        f"  {'round':>6} {'dancodes':>9} {'git':>8} {'ratio':>8} {'dancodes':>9} {'git':>8} {'ratio':>8}"
        f" {'stall ms':>8}",
    ]
    columns = (w["dancodes"], w["git"], w["ratio"], c["dancodes"], c["git"], c["ratio"])
    rows = zip(*columns, st["worst_per_round"], strict=True)
    for i, (a, b, q, ca, cb, cq, stall) in enumerate(rows, start=1):
        out.append(f"  {i:>6} {a:>9.3f} {b:>8.3f} {q:>7.2f}x {ca:>9.3f} {cb:>8.3f} {cq:>7.2f}x {stall:>8.1f}")
    out += [
        f"  {'median':>6} {w['median']['dancodes']:>9.3f} {w['median']['git']:>8.3f} {'':>8} "
        f"{c['median']['dancodes']:>9.3f} {c['median']['git']:>8.3f}",
        f"  ratio of the totals: wall {w['ratio_of_totals']:.2f}x, CPU {c['ratio_of_totals']:.2f}x",
        "",
        f"as worktrees accumulate: median of the first {e} rounds -> of the last {e}",
    ]
    for name, unit in (("dancodes", "s"), ("git", "s"), ("ratio", "x")):
        parts = []
        for label, kind in (("wall", w), ("CPU", c)):
            ends = kind["first_vs_last"][name]
            parts.append(
                f"{label} {ends['first']:.3f}{unit} -> {ends['last']:.3f}{unit} ({ends['growth']:.2f}x)"
            )
        out.append(f"  {name:<9}{'   '.join(parts)}")
    out += [
        "",
        f"the daemon's slowest GET /admin/health during a create: max {st['max']:.1f} ms, "
        f"median {st['median']:.1f} ms",
        f"  (each poll's {r['poll_cpu_ms']:.1f} ms of daemon CPU, measured idle, is not counted in its CPU)",
        f"clone (once, not a target): dancodes {r['clone_seconds']['dancodes']:.2f} s, "
        f"git clone {r['clone_seconds']['git']:.2f} s",
        "",
        "targets",
        f"  dancodes / git, wall (totals) <= {TARGET_RATIO:g}x: {w['ratio_of_totals']:.2f}x"
        f"  {verdict('ratio')}",
        f"  dancodes / git, CPU (totals) <= {TARGET_RATIO:g}x: {c['ratio_of_totals']:.2f}x"
        f"  {verdict('cpu_ratio')}",
        f"  CPU ratio to git, last rounds / first <= {TARGET_GROWTH:g}x: "
        f"{c['first_vs_last']['ratio']['growth']:.2f}x  {verdict('flat')}",
    ]
    return "\n".join(out)


def run(files: int, rounds: int, where: str | None = None) -> dict[str, Any] | None:
    """Measure; None (after saying why on stderr) if the bench itself failed."""
    return run_part("worktrees", lambda: measure(files, rounds, where))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--worktree-files",
        type=int,
        default=50_000,
        metavar="N",
        help="files in the repo the worktrees are made of (default 50000)",
    )
    parser.add_argument(
        "--worktree-rounds", type=int, default=10, metavar="N", help="worktrees made each way (default 10)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench worktrees", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument(
        "--dir",
        metavar="D",
        help="where the repo and worktrees go (default: /dev/shm if roomy, else the temp dir)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.worktree_files < 1 or args.worktree_rounds < 2:
        parser.error("--worktree-files must be at least 1 and --worktree-rounds at least 2")
    measure_it = lambda: measure(args.worktree_files, args.worktree_rounds, args.dir)  # noqa: E731
    return part_main("worktrees", measure_it, render, as_json=args.json)
