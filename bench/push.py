"""`python -m bench push [--turns N] [--json]`: what web push costs, in time and in the daemon's memory.

A loopback push service (tests/pushservice.py) stands in for the browsers' push services, and one browser
is subscribed (its keys made here, as a browser would make them). Each push is decrypted to check it.

    the daemon's idle RSS            the daemon as the main bench runs it (no opencode, one `sleep` child),
                                     push configured (keys made, one subscription): ~3 s idle before any
                                     push, after the first (a test push), and after N more
    chat finished -> push received   the real daemon with the real, pinned opencode and the scripted LLM
                                     (tests/llm.py), N turns of a chat in its worktree: from opencode's
                                     `session.status` idle for the chat, as the bench sees it on opencode's
                                     /global/event (the daemon follows the same stream), to the push service
                                     getting the POST

The peer is the other way to seal: in the daemon's own process. The daemon seals in a short-lived child
(`supervisor/push/seal.py`) so it never loads the crypto; the bench times that child against sealing in
process, and measures what importing the crypto (cryptography, py-vapid, http-ece) and sealing once adds
to a fresh Python process: the RSS the daemon would keep for good after its first push.
Everything started here is stopped here, by pid, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.procs import (
    CHILD_TOML,
    BenchError,
    Processes,
    log,
    part_main,
    rss_mb,
    run_part,
    start_bare_daemon,
    start_with_opencode,
    wait_for,
)
from supervisor.push import seal
from tests.llm import ScriptedLLM
from tests.pushservice import BrowserSubscription, PushService, b64url

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
TURN_TIMEOUT = 60.0
SETTLE = 3.0  # seconds idle before RSS is read
SEALS = 10  # child and in-process seals timed
TARGET_RSS_MB = 60.0
REPO = ("acme", "pushbench")
DIRECTORY = "x-opencode-directory"

#: run in a fresh interpreter: its RSS before and after the crypto is imported and used once
CRYPTO_COST = """
import json, os, sys, time, psutil
me = psutil.Process()
before = me.memory_info().rss
sys.path.insert(0, sys.argv[1])
import seal
from cryptography.hazmat.primitives.asymmetric import ec
vapid, public = seal.load_or_make_keys(__import__("pathlib").Path(sys.argv[2]))
print(json.dumps({"before": before, "after": me.memory_info().rss}))
"""


@dataclass
class IdleWatch:
    """Follows opencode's /global/event in a thread; the monotonic time each session last went idle."""

    url: str
    auth: tuple[str, str]
    idle_at: dict[str, float] = field(default_factory=dict)
    _connected: threading.Event = field(default_factory=threading.Event)
    _client: httpx.Client = field(init=False)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None), auth=self.auth)

    def start(self) -> IdleWatch:
        self._thread = threading.Thread(target=self._read, name="opencode-events", daemon=True)
        self._thread.start()
        if not self._connected.wait(30):
            raise BenchError(f"opencode's {self.url} sent nothing in 30s")
        return self

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self.url) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    self._connected.set()
                    event = json.loads(line[5:]).get("payload") or {}
                    props = event.get("properties") or {}
                    status = props.get("status") or {}
                    if event.get("type") == "session.status" and status.get("type") == "idle":
                        self.idle_at[str(props.get("sessionID"))] = time.monotonic()
        except (httpx.HTTPError, RuntimeError, ValueError, OSError, AttributeError):
            pass  # the stream ends when the bench closes the client or opencode stops

    def close(self) -> None:
        self._client.close()
        if self._thread is not None:
            self._thread.join(5)


def expect(response: httpx.Response, what: str, status: int = 200) -> Any:
    if response.status_code != status:
        raise BenchError(f"{what} answered {response.status_code}, not {status}: {response.text[:300]}")
    return response.json() if response.content else None


def make_chat(admin: httpx.Client, opencode: httpx.Client) -> tuple[str, str]:
    repo = "/".join(REPO)
    cloned = expect(admin.post("/admin/repos/clone", json={"repo": repo, "wait": True}), "clone", 201)
    session = expect(
        opencode.post("/session", headers={DIRECTORY: cloned["repo"]["path"]}, json={}), "POST /session"
    )
    made = expect(
        admin.post("/admin/worktrees", json={"repo": repo, "session_id": session["id"]}), "worktree", 201
    )
    return str(session["id"]), str(made["worktree"]["path"])


def crypto_loaded(pid: int) -> bool:
    return "cryptography" in Path(f"/proc/{pid}/maps").read_text()


def seal_timings(secrets: Path, browser: BrowserSubscription) -> dict[str, list[float]]:
    """Milliseconds to seal one push: in this process (after a warm-up) and in the daemon's child."""
    vapid, _ = seal.load_or_make_keys(secrets)
    keys = browser.to_json()["keys"]
    job = {
        "subject": "mailto:bench@example.com",
        "expires": int(time.time()) + 3600,
        "payload": b64url(b'{"title":"bench","body":"done","tag":"t","url":"/"}'),
        "targets": [{"id": "b", "aud": "http://127.0.0.1:1", "p256dh": keys["p256dh"], "auth": keys["auth"]}],
    }
    seal.seal(job, vapid)  # the first one imports the libraries
    inside, child = [], []
    for _ in range(SEALS):
        t0 = time.perf_counter()
        seal.seal(job, vapid)
        inside.append((time.perf_counter() - t0) * 1000)
    argv = [sys.executable, "-I", str(Path(seal.__file__)), "seal", str(secrets)]
    for _ in range(SEALS):
        t0 = time.perf_counter()
        done = subprocess.run(argv, input=json.dumps(job).encode(), capture_output=True, timeout=30)
        child.append((time.perf_counter() - t0) * 1000)
        if done.returncode != 0:
            raise BenchError(f"the sealing child failed: {done.stderr.decode(errors='replace')[:300]}")
    return {"in_process": inside, "child": child}


def crypto_cost_mb(secrets: Path) -> dict[str, float]:
    """A fresh Python's RSS before and after importing the crypto and loading the key (MB)."""
    done = subprocess.run(
        [sys.executable, "-c", CRYPTO_COST, str(Path(seal.__file__).parent), str(secrets)],
        capture_output=True,
        timeout=60,
        text=True,
    )
    if done.returncode != 0:
        raise BenchError(f"measuring the crypto's RSS failed: {done.stderr[-300:]}")
    got = json.loads(done.stdout)
    return {"before": got["before"] / 2**20, "after": got["after"] / 2**20}


def idle_rss(turns: int) -> dict[str, float]:
    """The bare daemon's RSS (MB) with push configured: before any push, after one, after `turns` more."""
    with tempfile.TemporaryDirectory(prefix="dancodes-bench-push-rss-") as tmp_name, PushService() as service:
        base = Path(tmp_name) / "daemon"
        base.mkdir()
        procs = Processes()
        try:
            daemon = start_bare_daemon(
                procs, base, CHILD_TOML + '[push]\nsubject = "mailto:bench@example.com"\n'
            )
            with daemon.control() as admin:
                healthy = lambda: admin.get("/admin/health").status_code == 200  # noqa: E731
                wait_for("dancodes healthy", healthy, daemon, START_TIMEOUT)
                key = lambda: admin.get("/admin/push/key").json().get("public_key")  # noqa: E731
                wait_for("the VAPID key", key, daemon, START_TIMEOUT)
                browser = BrowserSubscription(service.url("rss"))
                expect(admin.post("/admin/push/subscriptions", json=browser.to_json()), "subscribe", 201)
                time.sleep(SETTLE)
                rss = {"before_first_push": rss_mb(daemon.proc.pid)}
                for label, count in (("after_first_push", 1), ("after_more_pushes", turns)):
                    for _ in range(count):
                        results = expect(admin.post("/admin/push/test", json={}), "test push")["results"]
                        if not results[0]["ok"]:
                            raise BenchError(f"a test push failed: {results[0]['message']}")
                    time.sleep(SETTLE)
                    rss[label] = rss_mb(daemon.proc.pid)
                pushes = service.received("rss")
                if (
                    len(pushes) != 1 + turns
                    or json.loads(browser.decrypt(pushes[-1].body))["tag"] != "dancodes-test"
                ):
                    raise BenchError(f"{len(pushes)} test pushes arrived, not {1 + turns}")
                rss["crypto_loaded"] = float(crypto_loaded(daemon.proc.pid))
        finally:
            procs.stop_all()
    return rss


def measure(turns: int) -> dict[str, Any]:
    log(f"the daemon's idle RSS with push configured, before and after {1 + turns} test pushes")
    rss = idle_rss(turns)
    with tempfile.TemporaryDirectory(prefix="dancodes-bench-push-") as tmp_name:
        tmp = Path(tmp_name)
        procs = Processes()
        clients: list[httpx.Client] = []
        watch: IdleWatch | None = None
        with PushService() as service, ScriptedLLM() as llm:
            try:
                log(f"starting dancodes, opencode, the scripted LLM, a loopback push service; {turns} turns")
                subject = '[push]\nsubject = "mailto:bench@example.com"\n'
                daemon = start_with_opencode(procs, tmp, REPO, llm.base_url, subject)
                admin = daemon.control()
                clients.append(admin)
                healthy = lambda: admin.get("/admin/health").status_code == 200  # noqa: E731
                wait_for("dancodes with opencode healthy", healthy, daemon, START_TIMEOUT)
                key = lambda: admin.get("/admin/push/key").json().get("public_key")  # noqa: E731
                wait_for("the VAPID key", key, daemon, START_TIMEOUT)
                browser = BrowserSubscription(service.url("bench"))
                expect(admin.post("/admin/push/subscriptions", json=browser.to_json()), "subscribe", 201)
                opencode_url = f"http://127.0.0.1:{daemon.ports['opencode']}"
                opencode = httpx.Client(base_url=opencode_url, timeout=30, auth=daemon.opencode_auth)
                clients.append(opencode)
                version = str(
                    expect(opencode.get("/global/health"), "GET /global/health").get("version", "?")
                )
                session_id, path = make_chat(admin, opencode)
                following = lambda: admin.get("/admin/chats").json()["following"]  # noqa: E731
                wait_for("the daemon following opencode's events", following, daemon, START_TIMEOUT)
                watch = IdleWatch(f"{opencode_url}/global/event", daemon.opencode_auth).start()

                samples: list[float] = []
                for turn in range(turns):
                    count = len(service.received("bench"))
                    watch.idle_at.pop(session_id, None)
                    llm.reply_text(f"turn {turn} done")
                    expect(
                        opencode.post(
                            f"/session/{session_id}/prompt_async",
                            headers={DIRECTORY: path},
                            json={"parts": [{"type": "text", "text": f"turn {turn}"}]},
                        ),
                        "prompt_async",
                        204,
                    )
                    push = service.wait_for(count + 1, "bench", timeout=TURN_TIMEOUT)[-1]
                    idle = wait_for(
                        "the turn's idle event", lambda: watch.idle_at.get(session_id), daemon, 10
                    )
                    payload = json.loads(browser.decrypt(push.body))
                    if payload["tag"] != session_id or not payload["body"].startswith("done"):
                        raise BenchError(f"turn {turn}: an unexpected push: {payload}")
                    samples.append((push.at - idle) * 1000)
                log("timing the sealing child against sealing in process")
                seals = seal_timings(tmp / "bench-secrets", browser)
                cost = crypto_cost_mb(tmp / "bench-secrets")
            finally:
                if watch is not None:
                    watch.close()
                for client in clients:
                    client.close()
                procs.stop_all()
    return report(turns, version, samples, seals, rss, cost)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def stats(samples: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "p95": percentile(samples, 0.95),
        "min": min(samples),
        "max": max(samples),
        "samples": [round(x, 3) for x in samples],
    }


def report(
    turns: int,
    version: str,
    samples: list[float],
    seals: dict[str, list[float]],
    rss: dict[str, float],
    cost: dict[str, float],
) -> dict[str, Any]:
    child, inside = stats(seals["child"]), stats(seals["in_process"])
    added = cost["after"] - cost["before"]
    worst = max(rss["before_first_push"], rss["after_first_push"], rss["after_more_pushes"])
    return {
        "turns": turns,
        "opencode_version": version,
        "finished_to_push_ms": stats(samples),
        "seal_ms": {"child": child, "in_process": inside, "ratio_median": child["median"] / inside["median"]},
        "daemon_rss_mb": {
            "before_first_push": rss["before_first_push"],
            "after_first_push": rss["after_first_push"],
            "after_more_pushes": rss["after_more_pushes"],
            "crypto_loaded_in_daemon": bool(rss["crypto_loaded"]),
            "crypto_would_add": added,
            "in_process_estimate": rss["after_first_push"] + added,
        },
        "targets": {
            "idle_rss_mb": {"value": worst, "limit": TARGET_RSS_MB, "pass": worst <= TARGET_RSS_MB},
        },
    }


def render(r: dict[str, Any]) -> str:
    lat, seal_ms, rss = r["finished_to_push_ms"], r["seal_ms"], r["daemon_rss_mb"]
    verdict = "PASS" if r["targets"]["idle_rss_mb"]["pass"] else "MISS"
    out = [
        f"web push: opencode {r['opencode_version']}, {r['turns']} turns, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs",
        "",
        "chat finished -> push received, ms (opencode's idle event -> the push service's POST)",
    ]
    for key in ("median", "p95", "min", "max"):
        out.append(f"  {key:<8} {lat[key]:>9.1f}")
    out += [
        "",
        f"sealing one push, ms ({SEALS} each)   {'child':>9} {'in process':>11} {'ratio':>8}",
    ]
    for key in ("median", "min", "max"):
        ratio = seal_ms["child"][key] / seal_ms["in_process"][key]
        out.append(
            f"  {key:<33} {seal_ms['child'][key]:>9.1f} {seal_ms['in_process'][key]:>11.2f} {ratio:>7.3g}x"
        )
    out += [
        "  (the daemon seals in a child: a Python start and the crypto's import, every batch of pushes)",
        "",
        f"the daemon's idle RSS, MB ({SETTLE:g} s idle; no opencode, one child; push on, one subscription)",
        f"  {'before any push':<28} {rss['before_first_push']:>7.1f}",
        f"  {'after the first push':<28} {rss['after_first_push']:>7.1f}",
        f"  {'after ' + str(r['turns']) + ' more':<28} {rss['after_more_pushes']:>7.1f}",
        f"  crypto loaded in the daemon: {'yes' if rss['crypto_loaded_in_daemon'] else 'no'}",
        f"  sealing in process would add {rss['crypto_would_add']:.1f} MB for good: "
        f"~{rss['in_process_estimate']:.1f} after the first push",
        "",
        f"target: idle RSS <= {TARGET_RSS_MB:g} MB, before and after pushes: "
        f"{r['targets']['idle_rss_mb']['value']:.1f} MB  {verdict}",
    ]
    return "\n".join(out)


def run(turns: int) -> dict[str, Any] | None:
    return run_part("push", lambda: measure(turns))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--turns", type=int, default=10, metavar="N", help="chat turns pushed (default 10)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench push", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.turns < 1:
        parser.error("--turns must be at least 1")
    return part_main("push", lambda: measure(args.turns), render, as_json=args.json)
