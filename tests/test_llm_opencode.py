"""The scripted LLM (tests/llm.py) drives a real `opencode serve`: streamed text and a bash tool call.

opencode is started directly here (not through the daemon), once for the module, with its XDG state in a
temporary directory (`opencode_xdg`) and the provider from `opencode_config`. Nothing is fetched:
`@ai-sdk/openai-compatible` ships inside the opencode binary. Each test creates its own session in its own
git repository.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.llm import ScriptedLLM, opencode_config, opencode_xdg
from tests.sse import EventStream

OPENCODE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "opencode"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def make_repo(path: Path) -> Path:
    """A git repository with one commit (opencode keys its project on the root commit)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    # distinct content: two repositories with the same root commit are one opencode project
    (path / "README.md").write_text(f"{path}\n")
    git(path, "add", ".")
    git(path, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "init")
    return path


@dataclass
class Opencode:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    client: httpx.Client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_session(self, repo: Path) -> str:
        response = self.client.post("/session", headers={"x-opencode-directory": str(repo)}, json={})
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id

    def prompt(self, repo: Path, session_id: str, text: str) -> None:
        response = self.client.post(
            f"/session/{session_id}/prompt_async",
            headers={"x-opencode-directory": str(repo)},
            json={"parts": [{"type": "text", "text": text}]},
        )
        assert response.status_code == 204, response.text

    def messages(self, repo: Path, session_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/session/{session_id}/message", headers={"x-opencode-directory": str(repo)}
        )
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        return messages

    def events(self, repo: Path) -> EventStream:
        return EventStream(f"{self.base_url}/event", repo).start()


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def scripted(llm: ScriptedLLM) -> Iterator[ScriptedLLM]:
    """The module's LLM, emptied before each test."""
    llm.reset()
    yield llm
    llm.reset()


@pytest.fixture(scope="module")
def opencode(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLM) -> Iterator[Opencode]:
    home = tmp_path_factory.mktemp("opencode")
    env = {**os.environ, **opencode_xdg(home), "OPENCODE_CONFIG_CONTENT": opencode_config(llm.base_url)}
    port = free_port()
    log_path = home / "opencode.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(OPENCODE), "serve", "--port", str(port), "--hostname", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
    base_url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base_url, timeout=10)
    server = Opencode(proc=proc, base_url=base_url, log_path=log_path, client=client)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"opencode exited {proc.returncode}:\n{server.log()}"
            assert time.monotonic() < deadline, f"opencode not healthy in 20 s:\n{server.log()}"
            try:  # a request in the instant before it listens is never answered: short per-try timeouts
                if httpx.get(f"{base_url}/global/health", timeout=0.25).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield server
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_streamed_text_reaches_events_and_messages(
    opencode: Opencode, scripted: ScriptedLLM, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    events = opencode.events(repo)
    try:
        session_id = opencode.new_session(repo)
        text = "Hello from the scripted model, one small chunk at a time."
        scripted.reply_text(text, chunk_size=6, delay=0.03)

        opencode.prompt(repo, session_id, "say hello")

        events.wait_for(
            lambda e: e["type"] == "session.idle" and e["properties"]["sessionID"] == session_id, 30
        )
        deltas = [
            e["properties"]["delta"]
            for e in events.of_session(session_id, "message.part.delta")
            if e["properties"]["field"] == "text"
        ]
        assert len(deltas) >= 5, deltas
        assert "".join(deltas) == text
        statuses = [
            e["properties"]["status"]["type"] for e in events.of_session(session_id, "session.status")
        ]
        assert statuses[-1] == "idle", statuses
        assert "busy" in statuses
    finally:
        events.close()

    messages = opencode.messages(repo, session_id)
    assert [m["info"]["role"] for m in messages] == ["user", "assistant"]
    assistant_texts = [p["text"] for p in messages[1]["parts"] if p["type"] == "text"]
    assert assistant_texts == [text]
    assert messages[1]["info"]["finish"] == "stop"

    chats = scripted.chat_requests()
    assert len(chats) == 1
    assert chats[0].last_user_text == "say hello"
    assert chats[0].body["stream"] is True
    assert "bash" in chats[0].tool_names
    # the title request (if it came already) got the title, not a scripted reply
    assert all(r.kind in ("chat", "title") for r in scripted.requests)
    assert scripted.pending() == []


def test_bash_tool_call_runs_in_the_repo(opencode: Opencode, scripted: ScriptedLLM, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    events = opencode.events(repo)
    try:
        session_id = opencode.new_session(repo)
        command = "echo hi > made-by-tool.txt && cat made-by-tool.txt"
        scripted.reply_tool_call("bash", {"command": command, "description": "Write a file"})
        scripted.reply_text("I made the file.")

        opencode.prompt(repo, session_id, "make a file")

        events.wait_for(
            lambda e: e["type"] == "session.idle" and e["properties"]["sessionID"] == session_id, 30
        )
    finally:
        events.close()

    assert (repo / "made-by-tool.txt").read_text() == "hi\n"
    parts = [p for m in opencode.messages(repo, session_id) for p in m["parts"]]
    tools = [p for p in parts if p["type"] == "tool"]
    assert len(tools) == 1
    assert tools[0]["tool"] == "bash"
    assert tools[0]["state"]["status"] == "completed"
    assert tools[0]["state"]["input"]["command"] == command
    assert tools[0]["state"]["output"].strip() == "hi"
    assert [p["text"] for p in parts if p["type"] == "text"] == ["make a file", "I made the file."]

    chats = scripted.chat_requests()
    assert len(chats) == 2  # the tool call, then the answer to its result
    assert [r.strip() for r in chats[1].tool_results] == ["hi"]
    assert scripted.pending() == []
