"""Worktree GC and the idle-instance janitor with the real opencode: work is never lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gitutil import commit_file, git
from tests.stack import Stack, running_stack

GC_CONFIG = """
[gc]
interval_minutes = 0.0          # on demand only, until a test turns the schedule on
new_worktree_grace_minutes = 0.0
idle_days = 14.0
dispose_idle_minutes = 0.0
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("gc"), GC_CONFIG) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        yield client


def new_chat(client: httpx.Client, repo: str, repo_path: Path) -> tuple[str, Path]:
    session = client.post("/session", headers={"x-opencode-directory": str(repo_path)}, json={})
    assert session.status_code == 200, session.text
    sid: str = session.json()["id"]
    made = client.post("/admin/worktrees", json={"repo": repo, "session_id": sid})
    assert made.status_code == 201, made.text
    return sid, Path(made.json()["worktree"]["path"])


def forget(client: httpx.Client, sid: str, directory: Path) -> None:
    """The chat is deleted in opencode; its worktree is left for GC."""
    response = client.delete(f"/session/{sid}", headers={"x-opencode-directory": str(directory)})
    assert response.status_code == 200, response.text


def decisions(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {d["session_id"]: (d["action"], d["reason"]) for d in report["decisions"]}


def refs(repo_path: Path) -> str:
    return git(repo_path, "for-each-ref")


def test_gc_keeps_work_deletes_merged_and_dry_run_changes_nothing(stack: Stack, client: httpx.Client) -> None:
    remote = stack.remote("acme", "gc")
    repo_path = Path(
        client.post("/admin/repos/clone", json={"repo": "acme/gc", "wait": True}).json()["repo"]["path"]
    )

    unpushed_sid, unpushed = new_chat(client, "acme/gc", repo_path)
    commit_file(unpushed, "feature.py", "print('mine')\n")
    dirty_sid, dirty = new_chat(client, "acme/gc", repo_path)
    (dirty / "draft.md").write_text("not committed yet\n")
    merged_sid, merged = new_chat(client, "acme/gc", repo_path)
    commit_file(merged, "fix.py", "print('fixed')\n")
    git(merged, "push", "-q", str(remote.bare), "HEAD:refs/heads/main")  # the branch landed on main
    live_sid, live = new_chat(client, "acme/gc", repo_path)  # its chat still exists: not a candidate
    for sid, path in [(unpushed_sid, unpushed), (dirty_sid, dirty), (merged_sid, merged)]:
        forget(client, sid, path)

    before = (
        refs(repo_path),
        sorted(p.name for p in dirty.parent.iterdir()),
        (dirty / "draft.md").read_text(),
    )
    dry = client.post("/admin/gc", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    plan = decisions(dry.json())
    assert plan[merged_sid][0] == "delete"
    assert plan[unpushed_sid][0] == "keep"
    assert "on no remote" in plan[unpushed_sid][1]
    assert plan[dirty_sid][0] == "keep"
    assert "uncommitted" in plan[dirty_sid][1]
    assert plan[live_sid] == ("keep", "session active")
    assert dry.json()["deleted"] == []
    after_dry = (
        refs(repo_path),
        sorted(p.name for p in dirty.parent.iterdir()),
        (dirty / "draft.md").read_text(),
    )
    # a fetch may move origin's refs; nothing of ours changes
    assert [r for r in after_dry[0].splitlines() if "refs/remotes/" not in r] == [
        r for r in before[0].splitlines() if "refs/remotes/" not in r
    ]
    assert after_dry[1:] == before[1:]

    done = client.post("/admin/gc", json={"dry_run": False})
    assert done.status_code == 200, done.text
    assert done.json()["deleted"] == [f"acme/gc/{merged_sid}"]
    assert not merged.exists()
    assert f"dancodes/{merged_sid}" not in git(repo_path, "branch", "--list")
    assert (dirty / "draft.md").read_text() == "not committed yet\n"
    assert (unpushed / "feature.py").is_file()
    assert live.is_dir()
    listed = {wt["session_id"] for wt in client.get("/admin/worktrees").json()["worktrees"]}
    assert listed == {unpushed_sid, dirty_sid, live_sid}

    forced = client.post("/admin/gc", json={"dry_run": False, "force": True})
    assert sorted(forced.json()["deleted"]) == sorted([f"acme/gc/{unpushed_sid}", f"acme/gc/{dirty_sid}"])
    backups = git(repo_path, "for-each-ref", "--format=%(refname)", "refs/dancodes/backup/").splitlines()
    assert sorted(backups) == sorted(
        [f"refs/dancodes/backup/{unpushed_sid}/worktree", f"refs/dancodes/backup/{dirty_sid}/worktree"]
    )
    assert forced.json()["backups"] == {
        f"acme/gc/{unpushed_sid}": f"refs/dancodes/backup/{unpushed_sid}/worktree",
        f"acme/gc/{dirty_sid}": f"refs/dancodes/backup/{dirty_sid}/worktree",
    }
    # the backups hold the work: the commit, and the uncommitted file
    assert (
        git(repo_path, "show", f"refs/dancodes/backup/{unpushed_sid}/worktree:feature.py") == "print('mine')"
    )
    assert (
        git(repo_path, "show", f"refs/dancodes/backup/{dirty_sid}/worktree:draft.md") == "not committed yet"
    )
    assert live.is_dir()

    # the operator's view of the same
    listed_by_ctl = stack.daemon.ctl("worktrees")
    assert listed_by_ctl.returncode == 0, listed_by_ctl.stderr
    assert f"acme/gc/{live_sid}" in listed_by_ctl.stdout
    dry_by_ctl = stack.daemon.ctl("gc", "--dry-run")
    assert dry_by_ctl.returncode == 0, dry_by_ctl.stderr
    assert "would delete 0 worktree(s)" in dry_by_ctl.stdout
    assert "session active" in dry_by_ctl.stdout


def test_gc_on_its_schedule_and_the_janitor_disposes_idle_instances(
    stack: Stack, client: httpx.Client
) -> None:
    stack.remote("acme", "sched")
    repo_path = Path(
        client.post("/admin/repos/clone", json={"repo": "acme/sched", "wait": True}).json()["repo"]["path"]
    )
    idle_sid, idle = new_chat(client, "acme/sched", repo_path)
    stack.llm.reply_text("done here")
    prompt = client.post(
        f"/session/{idle_sid}/prompt_async",
        headers={"x-opencode-directory": str(idle)},
        json={"parts": [{"type": "text", "text": "hello"}]},
    )
    assert prompt.status_code == 204
    stack.daemon.wait_for(
        lambda: (
            client.get("/session/status", headers={"x-opencode-directory": str(idle)}).json() == {}
            and len(stack.llm.chat_requests()) >= 1
        ),
        60,
        "the turn to end",
    )
    gone_sid, gone = new_chat(client, "acme/sched", repo_path)
    forget(client, gone_sid, gone)

    # both schedules on, through the live config: GC about every 1.2 s, idle after 1.2 s
    for key, value in [("gc.dispose_idle_minutes", "0.02"), ("gc.interval_minutes", "0.02")]:
        assert stack.daemon.ctl("config", "set", key, value).returncode == 0

    stack.daemon.wait_for(lambda: not gone.exists(), 30, "the scheduled GC to prune the forgotten worktree")
    disposed = stack.daemon.wait_for(
        lambda: [
            e
            for e in stack.daemon.events()
            if e.get("event") == "instance_disposed" and e.get("directory") == str(idle)
        ],
        30,
        "the idle chat's instance disposed",
    )
    assert len(disposed) == 1
    time.sleep(2.5)  # a few more janitor rounds: nothing happened there since, so no second dispose
    again = [
        e
        for e in stack.daemon.events()
        if e.get("event") == "instance_disposed" and e.get("directory") == str(idle)
    ]
    assert len(again) == 1
    assert idle.is_dir()  # disposed, not deleted: its chat is only idle
    assert any(e.get("event") == "gc_done" and e.get("dry_run") is False for e in stack.daemon.events())
