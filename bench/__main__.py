"""`python -m bench [--kills N] [--chats N] [--json]`: dancodes against supervisord, side by side, in one run.

1. respawn latency: `kill -9` of the supervised `sleep 3600` → a new child has exec'd, N kills each;
2. idle RSS of the supervisor process after ~3 s idle: dancodes, supervisord, supervisord plus a
   FastAPI/uvicorn sidecar (the design dancodes replaces), and dancodes with no service at all;
3. the auth wall through a real Caddy (bench.forward_auth): latency it adds and checks per second.
   `python -m bench forward_auth` runs this part alone;
4. the web app's sidebar refresh against real opencode (bench.sidebar): `GET /admin/chats` against
   the old per-chat opencode calls, latency and opencode's RSS. `python -m bench sidebar` runs it alone;
5. an app reconnecting mid-reply (bench.resync): the daemon's snapshot against opencode's messages, with
   N chunks of a reply streamed. `python -m bench resync` runs it alone;
6. web push (bench.push): chat finished -> push received, the daemon's RSS before and after pushes,
   sealing in a child against sealing in process. `python -m bench push` runs it alone;
7. a new chat's worktree on a 50,000-file repo (bench.worktrees): `POST /admin/worktrees` against
   `git worktree add`, round after round. `python -m bench worktrees` runs it alone;
8. a soak (bench.soak): many chats in many worktrees, then idle, opencode's tree RSS over time without and
   with the memory ceiling. `python -m bench soak` runs it alone.

supervisord, FastAPI and uvicorn come from `.bench-venv` (supervisord's package is also called
`supervisor`). Everything started here is stopped here, by pid, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench import forward_auth, push, resync, sidebar, soak, worktrees
from bench.procs import (
    CHILD_TOML,
    BenchError,
    Processes,
    all_pids,
    cmdline,
    find_child,
    free_ports,
    interrupt_on_sigterm,
    is_sleep_child,
    rss_mb,
    start_bare_daemon,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH_VENV = ROOT / ".bench-venv"
IDLE = 3.0  # seconds idle before RSS is read
GAP = 0.3  # seconds between kills, so each restart is an ordinary one
RESPAWN_TIMEOUT = 10.0
START_TIMEOUT = 30.0
TARGET_MEDIAN_MS = 5.0
TARGET_RSS_MB = 60.0
T = TypeVar("T")

SUPERVISORD_CONF = """\
[unix_http_server]
file={tmp}/supervisord.sock
[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{tmp}/supervisord.sock
[program:child]
command=sleep 3600
startsecs=0
autorestart=true
startretries=1000
"""
SIDECAR_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/admin/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
"""


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _tail(logfile: Path) -> str:
    lines = logfile.read_text(errors="replace").strip().splitlines() if logfile.exists() else []
    return " | ".join(lines[-5:]) or "(no output)"


def wait_for(what: str, check: Callable[[], T | None], proc: subprocess.Popen[bytes], logfile: Path) -> T:
    """Poll `check()` until it returns something truthy; fail if `proc` exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}: {_tail(logfile)}")
        try:
            result = check()
        except (httpx.HTTPError, OSError, ValueError):
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise BenchError(f"{what} not ready after {START_TIMEOUT:g}s: {_tail(logfile)}")


def start_dancodes(procs: Processes, tmp: Path, name: str, *, child: bool) -> tuple[int, int | None]:
    """Start a daemon; return its pid and, with `child`, the supervised child's pid once running."""
    base = tmp / name
    base.mkdir()
    daemon = start_bare_daemon(procs, base, CHILD_TOML if child else "")
    proc, logfile = daemon.proc, daemon.logfile
    transport = httpx.HTTPTransport(uds=str(base / "data/run/dancodes.sock"))
    with httpx.Client(transport=transport, base_url="http://x", timeout=2.0) as client:
        if not child:
            healthy = lambda: client.get("/admin/health").status_code == 200  # noqa: E731
            wait_for(f"dancodes ({name})", healthy, proc, logfile)
            return proc.pid, None

        def running_child() -> int | None:
            for svc in client.get("/admin/services").json()["services"]:
                if svc["name"] == "child" and svc["state"] == "running" and svc["pid"]:
                    return int(svc["pid"])
            return None

        pid: int = wait_for(f"dancodes ({name})", running_child, proc, logfile)
    return proc.pid, pid


def start_supervisord(procs: Processes, tmp: Path) -> tuple[int, int]:
    base = tmp / "supervisord"
    base.mkdir()
    conf = base / "supervisord.conf"
    conf.write_text(SUPERVISORD_CONF.format(tmp=base))
    logfile = base / "stdout.log"
    proc = procs.start([str(BENCH_VENV / "bin/supervisord"), "-c", str(conf)], log=logfile, cwd=base)
    pid: int = wait_for(
        "supervisord", lambda: find_child(proc.pid, is_sleep_child, known=set(), timeout=0), proc, logfile
    )
    return proc.pid, pid


def start_sidecar(procs: Processes, tmp: Path) -> int:
    base = tmp / "sidecar"
    base.mkdir()
    (base / "sidecar_app.py").write_text(SIDECAR_APP)
    port = free_ports(1)[0]
    logfile = base / "uvicorn.log"
    argv = [
        str(BENCH_VENV / "bin/python"),
        "-m",
        "uvicorn",
        "sidecar_app:app",
        "--app-dir",
        str(base),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    proc = procs.start(argv, log=logfile, cwd=base)
    url = f"http://127.0.0.1:{port}/admin/health"
    wait_for("uvicorn sidecar", lambda: httpx.get(url, timeout=2.0).status_code == 200, proc, logfile)
    return proc.pid


def respawns(supervisor: int, child: int, kills: int, label: str) -> list[float]:
    """Kill the child `kills` times; each time, milliseconds until the next child has exec'd."""
    expected = cmdline(child)
    if not expected:
        raise BenchError(f"{label}: child {child} vanished before the first kill")
    samples: list[float] = []
    for i in range(kills):
        known = all_pids()
        t0 = time.perf_counter()
        os.kill(child, signal.SIGKILL)
        new = find_child(supervisor, expected.__eq__, known=known, timeout=RESPAWN_TIMEOUT)
        t1 = time.perf_counter()
        if new is None:
            raise BenchError(f"{label}: no new child {RESPAWN_TIMEOUT:g}s after kill {i + 1}")
        samples.append((t1 - t0) * 1000)
        child = new
        time.sleep(GAP)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def measure(kills: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dancodes-bench-") as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes()
        try:
            log("starting dancodes, supervisord, the FastAPI sidecar and an empty dancodes")
            d_pid, d_child = start_dancodes(procs, tmp, "dancodes", child=True)
            e_pid, _ = start_dancodes(procs, tmp, "dancodes-empty", child=False)
            s_pid, s_child = start_supervisord(procs, tmp)
            side_pid = start_sidecar(procs, tmp)
            time.sleep(IDLE)
            rss = {
                "dancodes": rss_mb(d_pid),
                "supervisord": rss_mb(s_pid),
                "sidecar": rss_mb(side_pid),
                "dancodes_empty": rss_mb(e_pid),
            }
            for proc in [p for p in procs.procs if p.pid in (e_pid, side_pid)]:
                procs.stop(proc)  # idle bystanders only add noise to the timings
            assert d_child is not None
            log(f"respawn: {kills} kills under dancodes")
            d_ms = respawns(d_pid, d_child, kills, "dancodes")
            log(f"respawn: {kills} kills under supervisord")
            s_ms = respawns(s_pid, s_child, kills, "supervisord")
        finally:
            procs.stop_all()  # before the temp dir goes: the daemons' sockets and logs live there
    return report(kills, d_ms, s_ms, rss)


def report(kills: int, d_ms: list[float], s_ms: list[float], rss: dict[str, float]) -> dict[str, Any]:
    def stats(ms: list[float]) -> dict[str, Any]:
        return {
            "median": statistics.median(ms),
            "p95": p95(ms),
            "min": min(ms),
            "max": max(ms),
            "samples": [round(x, 3) for x in ms],
        }

    d, s = stats(d_ms), stats(s_ms)
    pair = rss["supervisord"] + rss["sidecar"]
    return {
        "kills": kills,
        "respawn_ms": {
            "dancodes": d,
            "supervisord": s,
            "ratio": {k: d[k] / s[k] for k in ("median", "p95", "min", "max")},
        },
        "rss_mb": {
            **rss,
            "supervisord_plus_sidecar": pair,
            "ratio": {
                "supervisord": rss["dancodes"] / rss["supervisord"],
                "supervisord_plus_sidecar": rss["dancodes"] / pair,
            },
        },
        "targets": {
            "respawn_median_ms": {
                "value": d["median"],
                "limit": TARGET_MEDIAN_MS,
                "pass": d["median"] <= TARGET_MEDIAN_MS,
            },
            "idle_rss_mb": {
                "value": rss["dancodes"],
                "limit": TARGET_RSS_MB,
                "pass": rss["dancodes"] <= TARGET_RSS_MB,
            },
            "idle_rss_below_sidecar_design": {
                "value": rss["dancodes"],
                "limit": pair,
                "pass": rss["dancodes"] < pair,
            },
        },
    }


def render(r: dict[str, Any]) -> str:
    def verdict(name: str) -> str:
        return "PASS" if r["targets"][name]["pass"] else "MISS"

    resp, rss = r["respawn_ms"], r["rss_mb"]
    out = [
        f"dancodes bench: Python {platform.python_version()}, {os.cpu_count()} CPUs, child `sleep 3600`",
        "",
        f"respawn latency, ms (kill -9 of the child -> new child exec'd; {r['kills']} kills each)",
        f"  {'':<8} {'dancodes':>10} {'supervisord':>12} {'ratio':>9}",
    ]
    for key in ("median", "p95", "min", "max"):
        out.append(
            f"  {key:<8} {resp['dancodes'][key]:>10.2f} {resp['supervisord'][key]:>12.2f} "
            f"{resp['ratio'][key]:>8.3g}x"
        )
    out += [
        "  (supervisord respawns on its main loop's next pass, mostly after its 1 s poll timeout)",
        "",
        f"idle RSS, MB (supervisor process only, after {IDLE:g} s idle, supervising one child)",
        f"  {'peer':<36} {'dancodes':>9} {'peer':>8} {'ratio':>9}",
        f"  {'supervisord':<36} {rss['dancodes']:>9.1f} {rss['supervisord']:>8.1f} "
        f"{rss['ratio']['supervisord']:>8.3g}x",
        f"  {'supervisord + FastAPI/uvicorn sidecar':<36} {rss['dancodes']:>9.1f} "
        f"{rss['supervisord_plus_sidecar']:>8.1f} {rss['ratio']['supervisord_plus_sidecar']:>8.3g}x",
        f"    (supervisord {rss['supervisord']:.1f} + sidecar {rss['sidecar']:.1f})",
        f"  dancodes alone (no services at all): {rss['dancodes_empty']:.1f}",
        "",
        "targets",
        f"  respawn median <= {TARGET_MEDIAN_MS:g} ms: {resp['dancodes']['median']:.2f} ms"
        f"  {verdict('respawn_median_ms')}",
        f"  idle RSS <= {TARGET_RSS_MB:g} MB: {rss['dancodes']:.1f} MB  {verdict('idle_rss_mb')}",
        f"  idle RSS below supervisord + FastAPI sidecar: {rss['dancodes']:.1f} < "
        f"{rss['supervisord_plus_sidecar']:.1f} MB  {verdict('idle_rss_below_sidecar_design')}",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["forward_auth"]:
        return forward_auth.main(argv[1:])
    if argv[:1] == ["sidebar"]:
        return sidebar.main(argv[1:])
    if argv[:1] == ["resync"]:
        return resync.main(argv[1:])
    if argv[:1] == ["push"]:
        return push.main(argv[1:])
    if argv[:1] == ["worktrees"]:
        return worktrees.main(argv[1:])
    if argv[:1] == ["soak"]:
        return soak.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kills", type=int, default=50, metavar="N", help="kills per supervisor (default 50)"
    )
    forward_auth.add_arguments(parser)
    sidebar.add_arguments(parser)
    resync.add_arguments(parser)
    push.add_arguments(parser)
    worktrees.add_arguments(parser)
    soak.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.kills < 1 or args.chats < 1 or args.turns < 1 or args.worktree_files < 1:
        parser.error("--kills, --chats, --turns and --worktree-files must be at least 1")
    if args.worktree_rounds < 2:
        parser.error("--worktree-rounds must be at least 2")
    if not (BENCH_VENV / "bin/supervisord").exists():
        print(f"bench: {BENCH_VENV} with supervisord is missing: run `make bench`", file=sys.stderr)
        return 2
    interrupt_on_sigterm()
    try:
        result = measure(args.kills)
        wall = forward_auth.run(args.requests, args.seconds, args.conns)
        side = sidebar.run(args.chats)
        joined = resync.run(args.chunks)
        pushed = push.run(args.turns)
        trees = worktrees.run(args.worktree_files, args.worktree_rounds)
        soaked = soak.run(args.soak_chats, args.idle, args.limit)
    except BenchError as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    if args.json:
        everything = {"forward_auth": wall, "sidebar": side, "resync": joined, "push": pushed}
        everything["worktrees"] = trees
        everything["soak"] = soaked
        print(json.dumps({**result, **everything}, indent=2))
    else:
        print(render(result))
        if wall is not None:
            print("\n" + forward_auth.render(wall))
        if side is not None:
            print("\n" + sidebar.render(side))
        if joined is not None:
            print("\n" + resync.render(joined))
        if pushed is not None:
            print("\n" + push.render(pushed))
        if trees is not None:
            print("\n" + worktrees.render(trees))
        if soaked is not None:
            print("\n" + soak.render(soaked))
    parts = (wall, side, joined, pushed, trees, soaked)
    return 0 if all(part is not None for part in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
