"""`python -m bench sidebar [--chats N] [--json]`: what refreshing the web app's sidebar costs opencode.

Starts the real daemon with the real, pinned opencode (no Caddy, no LLM: no prompt is ever sent),
clones a bare local repo through the daemon and makes N chats: an opencode session made in the
clone, then its worktree (`POST /admin/worktrees`, which moves the session there). Then:

    disposed  `POST /instance/dispose` for every worktree (and the clone), straight to opencode
    NEW       `GET /admin/chats` on the daemon's control socket, 20 times: opencode's session list
              and the daemon's board of `/global/event`, which boot no instance
    OLD       what the app did before: per chat `GET /session/{id}` and `GET /session/status`
              straight to opencode with `x-opencode-directory: <worktree>`, sequentially; once
              (it boots the N instances), then 20 more times

It reports the latency per refresh, the RSS of opencode's process tree ~2 s after each phase, and
the instance boots seen on `/global/event` (opencode announces one as `project.updated`). RSS is
read as it is: on 1.18.33 it rose ~30 MB when the instances were disposed and fell when 10 booted
again, so the boot counts, not RSS, are what shows which refresh loads instances.
Everything started here is stopped here, by pid, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.procs import (
    BenchError,
    Processes,
    log,
    part_main,
    run_part,
    start_with_opencode,
    tail,
    wait_for,
)
from supervisor import memory

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0  # the daemon up and opencode healthy
READY_TIMEOUT = 30.0  # the chats listed, the event stream open
SETTLE = 2.0  # seconds after each phase before RSS is read
POLLS = 20
REPO = ("acme", "bench")
DIRECTORY = "x-opencode-directory"


# -- waiting on the daemon, reading opencode ------------------------------------------------------


def expect(response: httpx.Response, what: str, status: int = 200) -> Any:
    if response.status_code != status:
        raise BenchError(f"{what} answered {response.status_code}, not {status}: {response.text[:300]}")
    return response.json() if response.content else None


def opencode_pid(admin: httpx.Client) -> int | None:
    for svc in admin.get("/admin/services").json()["services"]:
        if svc["name"] == "opencode" and svc["state"] == "running" and svc["pid"]:
            return int(svc["pid"])
    return None


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and all its descendants, in MB, as the memory ceiling reads it (supervisor.memory)."""
    rss = memory.tree_rss_mb(pid)
    if rss is None:
        raise BenchError(f"opencode ({pid}) is gone")
    return rss


# -- instance boots, as opencode announces them on /global/event ----------------------------------


@dataclass
class Boots:
    """Reads `/global/event` in a thread and counts `project.updated` events, one per instance boot.

    Their `directory` is "global" on 1.18.33, so they tell how many instances booted, not which.
    """

    url: str
    auth: tuple[str, str]
    seen: int = 0
    _connected: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: httpx.Client = field(init=False)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None), auth=self.auth)

    def start(self) -> Boots:
        self._thread = threading.Thread(target=self._read, name="opencode-events", daemon=True)
        self._thread.start()
        if not self._connected.wait(READY_TIMEOUT):
            raise BenchError(f"opencode's {self.url} sent nothing in {READY_TIMEOUT:g}s")
        return self

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self.url) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    self._connected.set()
                    item = json.loads(line[5:])
                    payload = item.get("payload") if isinstance(item, dict) else None
                    if isinstance(payload, dict) and payload.get("type") == "project.updated":
                        with self._lock:
                            self.seen += 1
        except (httpx.HTTPError, RuntimeError, ValueError, OSError):
            pass  # the stream ends when the bench closes the client or opencode stops

    def count(self) -> int:
        with self._lock:
            return self.seen

    def close(self) -> None:
        self._client.close()
        if self._thread is not None:
            self._thread.join(5)


# -- the measurement -------------------------------------------------------------------------------


@dataclass
class Chat:
    session_id: str
    path: str


def make_chats(admin: httpx.Client, opencode: httpx.Client, n: int) -> tuple[str, list[Chat]]:
    """Clone the repo through the daemon, then `n` chats in worktrees; return the clone's path too."""
    repo = "/".join(REPO)
    cloned = expect(admin.post("/admin/repos/clone", json={"repo": repo, "wait": True}), "clone", 201)
    clone = str(cloned["repo"]["path"])
    chats: list[Chat] = []
    unmoved = 0
    for _ in range(n):
        session = expect(opencode.post("/session", headers={DIRECTORY: clone}, json={}), "POST /session")
        made = expect(
            admin.post("/admin/worktrees", json={"repo": repo, "session_id": session["id"]}),
            "POST /admin/worktrees",
            201,
        )
        unmoved += not made["session_moved"]
        chats.append(Chat(session_id=str(session["id"]), path=str(made["worktree"]["path"])))
    if unmoved:
        log(f"warning: {unmoved} of {n} sessions were not moved into their worktrees")
    return clone, chats


def listed(admin: httpx.Client, chats: list[Chat]) -> bool:
    """`/admin/chats` lists every chat as found, with opencode asked and its events followed."""
    body = expect(admin.get("/admin/chats"), "GET /admin/chats")
    found = {c["session_id"] for c in body["chats"] if c["found"] is True}
    return bool(body["opencode"] and body["following"] and found >= {c.session_id for c in chats})


def new_refresh(admin: httpx.Client, n: int) -> float:
    t0 = time.perf_counter()
    response = admin.get("/admin/chats")
    ms = (time.perf_counter() - t0) * 1000
    body = expect(response, "GET /admin/chats")
    if len(body["chats"]) != n:
        raise BenchError(f"GET /admin/chats listed {len(body['chats'])} chats, not {n}")
    return ms


def old_refresh(opencode: httpx.Client, chats: list[Chat]) -> float:
    """The old sidebar: each chat's session and its directory's statuses, asked of opencode."""
    answers: list[tuple[str, httpx.Response]] = []
    t0 = time.perf_counter()
    for chat in chats:
        headers = {DIRECTORY: chat.path}
        answers.append(
            (f"GET /session/{chat.session_id}", opencode.get(f"/session/{chat.session_id}", headers=headers))
        )
        answers.append(("GET /session/status", opencode.get("/session/status", headers=headers)))
    ms = (time.perf_counter() - t0) * 1000
    for what, response in answers:
        expect(response, what)
    return ms


def measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dancodes-bench-sb-") as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes()
        clients: list[httpx.Client] = []
        boots: Boots | None = None
        try:
            log(f"starting dancodes with opencode; a bare repo and {n} chats")
            # a provider on a closed port: no prompt is sent
            daemon = start_with_opencode(procs, tmp, REPO, "http://127.0.0.1:9/v1")
            admin = daemon.control()
            clients.append(admin)
            healthy = lambda: admin.get("/admin/health").status_code == 200  # noqa: E731
            wait_for("dancodes with opencode healthy", healthy, daemon, START_TIMEOUT)
            pid = wait_for("opencode's pid", lambda: opencode_pid(admin), daemon, READY_TIMEOUT)
            started = psutil.Process(pid).create_time()
            opencode_url = f"http://127.0.0.1:{daemon.ports['opencode']}"
            opencode = httpx.Client(base_url=opencode_url, timeout=30, auth=daemon.opencode_auth)
            clients.append(opencode)
            version = str(expect(opencode.get("/global/health"), "GET /global/health").get("version", "?"))
            time.sleep(SETTLE)
            rss_fresh = tree_rss_mb(pid)

            clone, chats = make_chats(admin, opencode, n)
            wait_for("every chat listed by /admin/chats", lambda: listed(admin, chats), daemon, READY_TIMEOUT)
            boots = Boots(f"{opencode_url}/global/event", daemon.opencode_auth).start()
            time.sleep(SETTLE)
            rss_booted = tree_rss_mb(pid)

            log(f"disposing the {n} worktrees' instances (and the clone's)")
            for directory in [c.path for c in chats] + [clone]:
                expect(
                    opencode.post("/instance/dispose", headers={DIRECTORY: directory}),
                    "POST /instance/dispose",
                )
            time.sleep(SETTLE)
            mark = boots.count()
            rss_disposed = tree_rss_mb(pid)

            log(f"NEW: {POLLS} x GET /admin/chats")
            new_ms = [new_refresh(admin, n) for _ in range(POLLS)]
            time.sleep(SETTLE)
            new_boots = boots.count() - mark
            mark = boots.count()
            rss_new = tree_rss_mb(pid)

            log(f"OLD: 1 + {POLLS} x {n} x (GET /session/{{id}} + GET /session/status)")
            old_first = old_refresh(opencode, chats)
            time.sleep(1.0)  # the first refresh's boot events arrive
            first_boots = boots.count() - mark
            mark = boots.count()
            old_ms = [old_refresh(opencode, chats) for _ in range(POLLS)]
            time.sleep(SETTLE)
            rest_boots = boots.count() - mark
            rss_old = tree_rss_mb(pid)

            # the old app also listed the worktrees (git, no opencode) on each refresh; timed apart
            worktrees_ms = []
            for _ in range(POLLS):
                t0 = time.perf_counter()
                response = admin.get("/admin/worktrees")
                worktrees_ms.append((time.perf_counter() - t0) * 1000)
                expect(response, "GET /admin/worktrees")

            now = opencode_pid(admin)
            if now != pid or psutil.Process(pid).create_time() != started:
                raise BenchError(
                    f"opencode restarted during the bench (pid {pid} -> {now}): {tail(daemon.logfile)}"
                )
        finally:
            if boots is not None:
                boots.close()
            for client in clients:
                client.close()
            procs.stop_all()  # before the temp dir goes: the daemon's socket and data live there
    return report(
        n,
        version,
        {"new": new_ms, "old": old_ms, "old_first": [old_first], "admin_worktrees": worktrees_ms},
        {
            "fresh": rss_fresh,
            "booted": rss_booted,
            "disposed": rss_disposed,
            "after_new": rss_new,
            "after_old": rss_old,
        },
        {"new": new_boots, "old_first": first_boots, "old_rest": rest_boots},
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def report(
    n: int, version: str, ms: dict[str, list[float]], rss: dict[str, float], boots: dict[str, int]
) -> dict[str, Any]:
    def stats(samples: list[float]) -> dict[str, Any]:
        return {
            "median": statistics.median(samples),
            "p95": percentile(samples, 0.95),
            "min": min(samples),
            "max": max(samples),
            "samples": [round(x, 3) for x in samples],
        }

    new, old = stats(ms["new"]), stats(ms["old"])
    grown = rss["after_old"] - rss["after_new"]
    return {
        "chats": n,
        "polls": POLLS,
        "opencode_version": version,
        "refresh_ms": {
            "new": new,
            "old": old,
            "old_first": ms["old_first"][0],
            "ratio": {k: old[k] / new[k] for k in ("median", "p95", "min", "max")},
            "admin_worktrees": stats(ms["admin_worktrees"]),
        },
        "opencode_rss_mb": {
            **rss,
            "old_minus_new": grown,
            "old_minus_new_per_chat": grown / n,
        },
        "instance_boots": boots,
    }


def render(r: dict[str, Any]) -> str:
    ms, rss, boots, n = r["refresh_ms"], r["opencode_rss_mb"], r["instance_boots"], r["chats"]
    out = [
        f"sidebar refresh: opencode {r['opencode_version']}, {n} chats in worktrees, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "",
        f"latency per refresh, ms ({r['polls']} refreshes each; OLD's requests one after another)",
        f"  {'':<8} {'NEW':>9} {'OLD':>9} {'OLD/NEW':>9}",
    ]
    for key in ("median", "p95", "min", "max"):
        out.append(f"  {key:<8} {ms['new'][key]:>9.2f} {ms['old'][key]:>9.2f} {ms['ratio'][key]:>8.3g}x")
    out += [
        "  NEW: GET /admin/chats (control socket)",
        f"  OLD: {n} x (GET /session/{{id}} + GET /session/status), straight to opencode",
        f"  OLD's first refresh, booting the instances: {ms['old_first']:.1f} ms",
        f"  (the old app also fetched GET /admin/worktrees: median {ms['admin_worktrees']['median']:.1f} ms,"
        " not counted above)",
        "",
        f"opencode RSS, MB (its process tree, {SETTLE:g} s after each phase)",
        f"  {'opencode started, no chat yet':<34} {rss['fresh']:>8.1f}",
        f"  {'chats made (their instances up)':<34} {rss['booted']:>8.1f}",
        f"  {'every chat instance disposed':<34} {rss['disposed']:>8.1f}",
        f"  {'after the NEW refreshes':<34} {rss['after_new']:>8.1f}",
        f"  {'after the OLD refreshes':<34} {rss['after_old']:>8.1f}",
        f"  OLD - NEW: {rss['old_minus_new']:+.1f} MB, {rss['old_minus_new_per_chat']:+.1f} MB per chat",
        "",
        "instance boots seen on /global/event (project.updated)",
        f"  NEW refreshes: {boots['new']}; OLD's first refresh: {boots['old_first']}; "
        f"OLD's later refreshes: {boots['old_rest']}",
    ]
    return "\n".join(out)


def run(chats: int) -> dict[str, Any] | None:
    """Measure; None (after saying why on stderr) if the bench itself failed."""
    return run_part("sidebar", lambda: measure(chats))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chats", type=int, default=10, metavar="N", help="chats (worktrees) in the sidebar (default 10)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sidebar", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.chats < 1:
        parser.error("--chats must be at least 1")
    return part_main("sidebar", lambda: measure(args.chats), render, as_json=args.json)
