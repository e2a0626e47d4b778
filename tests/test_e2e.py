"""The whole path a phone takes, through Caddy on the public port with the real opencode and a
scripted LLM: log in, clone a repo, start a chat in its own worktree, stream the reply, list it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sse import EventStream
from tests.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e")) as stack:
        yield stack


def test_clone_worktree_chat_and_streamed_reply_through_caddy(stack: Stack) -> None:
    remote = stack.remote("acme", "rocket")
    client = stack.login()

    cloned = client.post("/admin/repos/clone", json={"repo": "acme/rocket", "wait": True})
    assert cloned.status_code == 201, cloned.text
    repo_path = Path(cloned.json()["repo"]["path"])
    assert (repo_path / "README.md").read_text() == "# rocket\n"

    # the phone's order: the chat first (in the clone), then its worktree, named by the chat's id
    session = client.post("/session", headers={"x-opencode-directory": str(repo_path)}, json={})
    assert session.status_code == 200, session.text
    session_id = session.json()["id"]
    made = client.post("/admin/worktrees", json={"repo": "acme/rocket", "session_id": session_id})
    assert made.status_code == 201, made.text
    assert made.json()["session_moved"] is True  # its turns now run in the worktree
    worktree = made.json()["worktree"]
    assert worktree["branch"] == f"dancodes/{session_id}"
    wt_path = Path(worktree["path"])
    assert wt_path.name == f"acme__rocket__{session_id}"
    assert (wt_path / "README.md").is_file()
    assert remote.bare.is_dir()

    stream = EventStream(f"{stack.url}/event", wt_path, cookies=client.cookies).start()
    try:
        stack.llm.reply_tool_call("bash", {"command": "echo from-the-agent > agent.txt"})
        stack.llm.reply_text("The file is written, all good.", chunk_size=4, delay=0.05)
        prompt = client.post(
            f"/session/{session_id}/prompt_async",
            headers={"x-opencode-directory": str(wt_path)},
            json={"parts": [{"type": "text", "text": "write agent.txt please"}]},
        )
        assert prompt.status_code == 204, prompt.text
        stream.wait_for(
            lambda e: e["type"] == "session.idle" and e["properties"].get("sessionID") == session_id, 60
        )
        deltas = stream.of_session(session_id, "message.part.delta")
        text = "".join(e["properties"].get("delta", "") for e in deltas)
        assert "The file is written, all good." in text
        assert len(deltas) >= 5  # token by token, not one blob at the end
    finally:
        stream.close()

    assert (wt_path / "agent.txt").read_text() == "from-the-agent\n"  # the tool ran in the worktree
    assert not (repo_path / "agent.txt").exists()

    listed = client.get("/admin/worktrees").json()["worktrees"]
    mine = next(wt for wt in listed if wt["session_id"] == session_id)
    assert mine["repo"] == "acme/rocket"
    assert mine["dirty"] is True
    assert mine["changed_files"] == 1
    assert mine["unpushed"] == 0
    assert mine["size"] > 0
    repos = client.get("/admin/repos").json()["repos"]
    assert [r["repo"] for r in repos] == ["acme/rocket"]
    assert repos[0]["worktrees"] == 1
