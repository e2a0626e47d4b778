"""`python -m bench soak [--soak-chats N] [--idle S] [--limit MB] [--json]`: opencode's memory over a working
session, without and with the memory ceiling (supervisor.memory), side by side.

Twice, through the real stack (Caddy, the wall, the real opencode, the scripted LLM): N chats, each in its own
worktree with one turn answered, then S seconds idle. The RSS of opencode's whole process tree is read every
second. The first run has no ceiling; the second has `memory_limit_mb = MB` (a limit the bench's few chats
pass: the default, 700 MB, is sized for a 1 GB machine and takes more chats to reach), measured every second.
It reports the tree's RSS at its peak, after the chats and at the end of the idle time, the restarts the
ceiling made, and that every chat is still readable after. Everything started here is stopped here, by pid.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.procs import BenchError, part_main, run_part
from supervisor.memory import tree_rss_mb
from tests.stack import Stack, running_stack

REPO = ("acme", "soak")
TURN_TIMEOUT = 60.0


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise BenchError(f"timed out waiting for {what}")


def _answered(send: Any, what: str) -> httpx.Response:
    """`send()` until opencode answers it: the ceiling restarts opencode between the chats (none is in a turn
    then), and a request in those seconds gets Caddy's 502, or no answer from the process being stopped."""

    def attempt() -> httpx.Response | None:
        try:
            response: httpx.Response = send()
        except httpx.TimeoutException:
            return None  # sent to the opencode being stopped: it never answers
        return None if response.status_code in (502, 503) else response

    found: httpx.Response = _wait(attempt, 60, what)
    return found


def _opencode_pid(stack: Stack) -> int | None:
    svc = stack.daemon.service("opencode")
    return int(svc["pid"]) if svc["state"] == "running" and svc["pid"] else None


def _answered_with(client: httpx.Client, url: str, where: dict[str, str], text: str) -> bool:
    """The chat's messages hold `text` (its reply is stored)."""
    try:
        got = client.get(url, headers=where)
    except httpx.TimeoutException:
        return False
    return got.status_code == 200 and text in got.text


def one_run(chats: int, idle: float, limit: int | None) -> dict[str, Any]:
    extra = "[daemon]\nmemory_interval = 1.0\n"
    if limit is not None:
        extra += f"[services.opencode]\nmemory_limit_mb = {limit}\nmemory_hard_limit_mb = 4000\n"
    samples: list[tuple[float, float]] = []  # (seconds since the start, MB)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp), extra, memory_ceiling=limit is not None) as stack,
        stack.signed_in() as client,
    ):
        client.timeout = httpx.Timeout(10.0)
        start = time.monotonic()

        def sample() -> None:
            pid = _opencode_pid(stack)
            rss = tree_rss_mb(pid) if pid else None
            if rss is not None:
                samples.append((time.monotonic() - start, rss))

        stack.remote(*REPO)
        cloned = client.post("/admin/repos/clone", json={"repo": "/".join(REPO), "wait": True}, timeout=60)
        if cloned.status_code != 201:
            raise BenchError(f"clone answered {cloned.status_code}: {cloned.text[:200]}")
        clone = {"x-opencode-directory": cloned.json()["repo"]["path"]}
        made: list[tuple[str, dict[str, str]]] = []
        for i in range(chats):
            session_id = _answered(
                lambda: client.post("/session", headers=clone, json={}), "a session"
            ).json()["id"]
            tree = client.post("/admin/worktrees", json={"repo": "/".join(REPO), "session_id": session_id})
            if tree.status_code != 201:
                raise BenchError(f"worktree answered {tree.status_code}: {tree.text[:200]}")
            where = {"x-opencode-directory": tree.json()["worktree"]["path"]}
            stack.llm.reply_text(f"reply {i}: " + "words " * 200)
            body = {"parts": [{"type": "text", "text": f"task {i}"}]}
            url = f"/session/{session_id}/prompt_async"
            _answered(
                lambda url=url, where=where, body=body: client.post(url, headers=where, json=body), "prompt"
            )
            url = f"/session/{session_id}/message"
            _wait(
                lambda url=url, where=where, i=i: _answered_with(client, url, where, f"reply {i}:"),
                TURN_TIMEOUT,
                f"chat {i} answered",
            )
            made.append((session_id, where))
            sample()
        after_chats = samples[-1][1] if samples else 0.0
        peak = max((mb for _, mb in samples), default=0.0)
        idle_until = time.monotonic() + idle
        while time.monotonic() < idle_until:
            sample()
            time.sleep(1.0)
        peak = max(peak, *(mb for _, mb in samples))
        readable = 0
        for i, (session_id, where) in enumerate(made):
            url = f"/session/{session_id}/message"
            got = _answered(
                lambda url=url, where=where: client.get(url, headers=where, timeout=60), "messages"
            )
            if got.status_code == 200 and f"reply {i}:" in str(got.json()):
                readable += 1
        svc = stack.daemon.service("opencode")
        return {
            "limit_mb": limit,
            "peak_mb": round(peak, 1),
            "after_chats_mb": round(after_chats, 1),
            "end_mb": round(samples[-1][1], 1) if samples else None,
            "memory_restarts": svc["memory_restarts"],
            "readable": readable,
            "chats": chats,
            "timeline": [(round(t, 1), round(mb, 1)) for t, mb in samples],
        }


def measure(chats: int, idle: float, limit: int) -> dict[str, Any]:
    return {"without": one_run(chats, idle, None), "with": one_run(chats, idle, limit), "idle_s": idle}


def render(result: dict[str, Any]) -> str:
    off, on = result["without"], result["with"]
    lines = [
        f"soak: {off['chats']} chats in {off['chats']} worktrees, then {result['idle_s']:g} s idle; "
        "RSS of opencode's process tree (MB)",
        f"  {'':24}{'peak':>8}{'after chats':>13}{'end of idle':>13}{'restarts':>10}{'readable':>10}",
    ]
    for name, run in (("no ceiling", off), (f"ceiling {on['limit_mb']} MB", on)):
        lines.append(
            f"  {name:24}{run['peak_mb']:>8.0f}{run['after_chats_mb']:>13.0f}{run['end_mb'] or 0:>13.0f}"
            f"{run['memory_restarts']:>10}{run['readable']:>7}/{run['chats']}"
        )
    if on["end_mb"] and off["end_mb"]:
        lines.append(f"  end of idle, without / with the ceiling: {off['end_mb'] / on['end_mb']:.2f}x")
    lines.append(
        "  timeline with the ceiling (s: MB): " + ", ".join(f"{t:g}: {mb:.0f}" for t, mb in on["timeline"])
    )
    return "\n".join(lines)


def run(chats: int, idle: float, limit: int) -> dict[str, Any] | None:
    return run_part("soak", lambda: measure(chats, idle, limit))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--soak-chats", type=int, default=8, metavar="N", help="chats in the soak (default 8)"
    )
    parser.add_argument(
        "--idle", type=float, default=20.0, metavar="S", help="seconds idle after (default 20)"
    )
    parser.add_argument(
        "--limit", type=int, default=420, metavar="MB", help="the soak's memory_limit_mb (default 420)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.soak_chats < 1 or args.idle < 0 or args.limit < 1:
        parser.error("--soak-chats and --limit must be at least 1, --idle not negative")
    return part_main(
        "soak", lambda: measure(args.soak_chats, args.idle, args.limit), render, as_json=args.json
    )
