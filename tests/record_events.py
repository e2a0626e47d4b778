"""Record what opencode's `/global/event` sends in the turns a chat goes through, for tests/data/events.

    PYTHONPATH=. .venv/bin/python -m tests.record_events

Runs the real stack (real opencode, the scripted LLM) and writes one JSONL file per scenario: every
event of the chat's session, as `{"directory", "payload"}`, heartbeats left out. The status logic
(`supervisor.chats`) and the live text (`supervisor.live`) are tested on these files, so a new
opencode release is checked by recording again and running the tests.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.llm import ScriptedLLM
from tests.stack import Stack, running_stack

OUT = Path(__file__).parent / "data" / "events"


class Recorder:
    def __init__(self, stack: Stack, client: httpx.Client) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, args=(stack, client), daemon=True)
        self.thread.start()

    def _follow(self, stack: Stack, client: httpx.Client) -> None:
        try:
            with client.stream("GET", "/global/event", timeout=httpx.Timeout(30, read=None)) as stream:
                for line in stream.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("data:"):
                        item = json.loads(line[5:])
                        if item["payload"]["type"] == "sync":
                            continue  # opencode's own replication, a copy of each event
                        with self.lock:
                            self.events.append({"directory": item["directory"], "payload": item["payload"]})
        except httpx.HTTPError:
            return  # the stack stopped

    def take(self, session_id: str) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.events = self.events, []
        return [e for e in taken if session_id in json.dumps(e["payload"])]


def wait(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # bash asks first, so a turn waits on the user once; everything else runs
        extra = {"permission": {"*": "allow", "bash": "ask"}}
        with running_stack(Path(tmp), opencode_extra=extra) as stack, stack.signed_in() as client:
            stack.remote("acme", "rec")
            cloned = client.post("/admin/repos/clone", json={"repo": "acme/rec", "wait": True}).json()
            clone = cloned["repo"]["path"]
            recorder = Recorder(stack, client)
            wait("the event stream", lambda: bool(recorder.thread.is_alive()))
            llm: ScriptedLLM = stack.llm

            def chat() -> tuple[str, dict[str, str]]:
                sid = client.post("/session", headers={"x-opencode-directory": clone}, json={}).json()["id"]
                made = client.post("/admin/worktrees", json={"repo": "acme/rec", "session_id": sid}).json()
                return sid, {"x-opencode-directory": made["worktree"]["path"]}

            def prompt(sid: str, headers: dict[str, str], text: str) -> None:
                body = {"parts": [{"type": "text", "text": text}]}
                assert (
                    client.post(f"/session/{sid}/prompt_async", headers=headers, json=body).status_code == 204
                )

            def idle(sid: str, headers: dict[str, str]) -> None:
                def done() -> bool:
                    status = client.get("/session/status", headers=headers).json()
                    messages = client.get(f"/session/{sid}/message", headers=headers).json()
                    last = messages[-1]["info"] if messages else {}
                    return sid not in status and bool(last.get("time", {}).get("completed"))

                wait("the turn's end", done)
                time.sleep(0.5)  # a recording, not a test: let the trailing events in

            def save(name: str, sid: str) -> None:
                events = recorder.take(sid)
                path = OUT / f"{name}.jsonl"
                path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
                print(f"{path}: {len(events)} events")

            # a streamed reply (text deltas), a tool call and its output, then the answer
            sid, headers = chat()
            llm.reply_tool_call("read", {"filePath": "README.md"}, text="Looking at it now. ")
            llm.reply_text("It is a readme of three words.", chunk_size=5)
            prompt(sid, headers, "what is in the readme?")
            idle(sid, headers)
            save("turn", sid)

            # the provider refuses the request: the turn fails
            sid, headers = chat()
            llm.reply_error(400, "the scripted model refuses this one")
            prompt(sid, headers, "fail please")
            idle(sid, headers)
            save("failed", sid)

            # the provider fails twice and is retried, then answers
            sid, headers = chat()
            llm.reply_error(500, "overloaded, try again")
            llm.reply_error(500, "still overloaded")
            llm.reply_text("Answered after the retries.")
            prompt(sid, headers, "retry please")
            idle(sid, headers)
            save("retry", sid)

            # a bash call asks the user first; the user allows it once
            sid, headers = chat()
            llm.reply_tool_call("bash", {"command": "echo asked", "description": "say asked"})
            llm.reply_text("It said asked.")
            prompt(sid, headers, "run echo")

            def asked() -> bool:
                pending = client.get("/permission", headers=headers).json()
                return any(p.get("sessionID") == sid for p in pending)

            wait("the permission request", asked)
            request = next(
                p for p in client.get("/permission", headers=headers).json() if p["sessionID"] == sid
            )
            replied = client.post(
                f"/permission/{request['id']}/reply", headers=headers, json={"reply": "once"}
            )
            assert replied.status_code == 200, replied.text
            idle(sid, headers)
            save("permission", sid)
            recorder.stop.set()


if __name__ == "__main__":
    main()
