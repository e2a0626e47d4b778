"""`python -m bench resync [--chunks N] [--json]`: an app that reconnects in the middle of a long reply.

opencode 1.18 stores a text part empty until the part ends, so a page that opens, reloads or
reconnects mid-reply cannot get the reply so far from opencode. The daemon keeps the deltas of running
turns and serves them in its stream's snapshot. Through the real stack (Caddy, the wall, opencode, the
scripted LLM), a reply streams N chunks and is held there; then, 20 times each:

    DAEMON   what the app does: `GET /admin/chats/events` (the snapshot) and the session's messages
    OPENCODE opencode alone: `GET /session/{id}/message`

It reports the latency and how much of the reply so far each gives; opencode alone shows the text only
once the part ends (`until the end` below: the rest of the reply, released after the measurement).
Everything started here is stopped here, by pid, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import BenchError, part_main, run_part
from tests.llm import Reply
from tests.stack import running_stack

ROUNDS = 20
CHUNK = 4  # characters a chunk


def _text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for m in messages for p in m["parts"] if p["type"] == "text")


def measure(chunks: int) -> dict[str, Any]:
    reply = "".join(f"w{i:03d}" for i in range(chunks + 50))  # CHUNK characters a word: one word a chunk
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack, stack.signed_in() as c:
        stack.remote("acme", "bench")
        cloned = c.post("/admin/repos/clone", json={"repo": "acme/bench", "wait": True})
        if cloned.status_code != 201:
            raise BenchError(f"clone: {cloned.text}")
        clone = cloned.json()["repo"]["path"]
        sid = c.post("/session", headers={"x-opencode-directory": clone}, json={}).json()["id"]
        made = c.post("/admin/worktrees", json={"repo": "acme/bench", "session_id": sid}).json()
        where = {"x-opencode-directory": made["worktree"]["path"]}
        stack.llm.hold()
        try:
            stack.llm.reply(Reply(text=reply, chunk_size=CHUNK, held_after=chunks))
            body = {"parts": [{"type": "text", "text": "write a long answer"}]}
            c.post(f"/session/{sid}/prompt_async", headers=where, json=body).raise_for_status()
            so_far = reply[: chunks * CHUNK]
            deadline = time.monotonic() + 120
            while True:  # until the daemon holds all N chunks
                live = c.get("/admin/chats/events").json()["properties"]["live"]
                if sum(len(p["text"]) for p in live if p["sessionID"] == sid) >= len(so_far):
                    break
                if time.monotonic() > deadline:
                    raise BenchError("the reply did not stream its chunks in 120 s")
                time.sleep(0.1)
            daemon_ms, opencode_ms, daemon_chars, opencode_chars = [], [], 0, 0
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                snapshot = c.get("/admin/chats/events").json()["properties"]
                stored = c.get(f"/session/{sid}/message", headers=where).json()
                daemon_ms.append((time.perf_counter() - t0) * 1000)
                live_text = "".join(p["text"] for p in snapshot["live"] if p["sessionID"] == sid)
                daemon_chars = max(len(_text_of(stored)), len(live_text))
                t0 = time.perf_counter()
                stored = c.get(f"/session/{sid}/message", headers=where).json()
                opencode_ms.append((time.perf_counter() - t0) * 1000)
                opencode_chars = len(_text_of(stored))
            t0 = time.perf_counter()
        finally:
            stack.llm.release()
        deadline = time.monotonic() + 120
        while len(_text_of(c.get(f"/session/{sid}/message", headers=where).json())) < len(reply):
            if time.monotonic() > deadline:
                raise BenchError("the reply did not end in 120 s")
            time.sleep(0.05)
        until_end_ms = (time.perf_counter() - t0) * 1000
    return {
        "chunks": chunks,
        "chars_so_far": len(so_far),
        "rounds": ROUNDS,
        "daemon_ms": _stats(daemon_ms),
        "opencode_ms": _stats(opencode_ms),
        "daemon_chars": daemon_chars,
        "opencode_chars": opencode_chars,
        "opencode_until_end_ms": until_end_ms,
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "min": ordered[0],
    }


def render(r: dict[str, Any]) -> str:
    d, o = r["daemon_ms"], r["opencode_ms"]
    return "\n".join(
        [
            f"resync mid-reply: {r['chunks']} chunks ({r['chars_so_far']} characters) streamed, turn running",
            f"  {'':<30} {'median ms':>10} {'p95 ms':>8} {'text so far':>12}",
            f"  {'DAEMON (snapshot + messages)':<30} {d['median']:>10.2f} {d['p95']:>8.2f} "
            f"{r['daemon_chars']:>6}/{r['chars_so_far']}",
            f"  {'OPENCODE (messages)':<30} {o['median']:>10.2f} {o['p95']:>8.2f} "
            f"{r['opencode_chars']:>6}/{r['chars_so_far']}",
            f"  DAEMON/OPENCODE latency: {d['median'] / o['median']:.2f}x; opencode alone shows the text "
            f"only once the part ends (here {r['opencode_until_end_ms']:.0f} ms later, the rest released)",
        ]
    )


def run(chunks: int) -> dict[str, Any] | None:
    return run_part("resync", lambda: measure(chunks))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chunks", type=int, default=500, metavar="N", help="chunks streamed before the resync (default 500)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench resync", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.chunks < 1:
        parser.error("--chunks must be at least 1")
    return part_main("resync", lambda: measure(args.chunks), render, as_json=args.json)
