"""Every state an agent leaves behind survives GC, forced GC and a forced repo delete (issue 9, §5).

Each state is built for real with the git CLI inside a worktree the daemon made, its chat deleted in
opencode; then GC runs plain (the work is kept), forced (the work goes into backup refs in the clone)
and the repo is deleted (plain: refused while a local ref holds a commit; forced: every ref goes into
a bare backup repo), and the content and history are read back from what is left. The planning rules
themselves get fast tests on plain values first.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.projects import ProjectStore, RepoName, WorktreeInfo, plan_gc
from supervisor.projects._git import REGENERABLE, _RefPaths, regenerable
from tests.gitutil import Remote, as_owner_of, commit_file, git, make_remote, run_here, writing_as_owner_of
from tests.stack import Stack, running_stack
from tests.test_gc import GC_CONFIG, decisions, forget, new_chat

REPO = RepoName("acme", "plan")
NOW = 1_900_000_000.0
DAY = 86400.0

# what a project's .gitignore typically holds: secrets, build output, caches
IGNORE = ".env\nbuild/\nnode_modules/\n__pycache__/\n*.log\n"
MiB = 1024 * 1024


# -- the plan, on plain values ------------------------------------------------------------------


def info(sid: str, repo: RepoName = REPO, **fields: Any) -> WorktreeInfo:
    values: dict[str, Any] = {
        "branch": f"dancodes/{sid}",
        "head": "abc1234",
        "dirty": False,
        "changed_files": 0,
        "unpushed": 0,
        "size": 1,
        "last_activity": NOW - 30 * DAY,
        **fields,
    }
    return WorktreeInfo(repo=repo, session_id=sid, path=Path("/w") / sid, **values)


def plan(worktrees: list[WorktreeInfo], *, force: bool, **kwargs: Any) -> dict[str, tuple[str, str, bool]]:
    made = plan_gc(worktrees, {}, set(), now=NOW, idle_days=14, force=force, **kwargs)
    return {d.worktree.session_id: (d.action, d.reason, d.backup) for d in made}


def test_a_worktree_of_a_repo_whose_fetch_failed_is_kept_plain_or_forced() -> None:
    other = RepoName("acme", "reachable")
    worktrees = [info("clean"), info("work", unpushed=2), info("elsewhere", repo=other)]
    down = {REPO: "fetch of acme/plan failed: could not find repository"}
    for force in (False, True):
        decided = plan(worktrees, force=force, unreachable=down)
        reason = "session gone but remote unreachable: fetch of acme/plan failed: could not find repository"
        assert decided["clean"] == ("keep", reason, False)
        assert decided["work"] == ("keep", reason, False)
        assert decided["elsewhere"] == ("delete", "session gone", False)  # its own remote answered


def test_ignored_files_submodules_and_nested_repos_are_work() -> None:
    worktrees = [
        info("ignored", ignored=(".env", "build/", "a.log", "b.log")),
        info("nested", dirty=True, changed_files=1, nested=("vendor/tool",)),
        info("submodule", submodules=("lib (branch side: 1 commit on no remote)",)),
        info("nothing"),
    ]
    assert plan(worktrees, force=False) == {
        "ignored": ("keep", "session gone but ignored files (.env, build/, a.log and 1 more)", False),
        "nested": ("keep", "session gone but 1 uncommitted change; nested repo vendor/tool", False),
        "submodule": (
            "keep",
            "session gone but submodule lib (branch side: 1 commit on no remote)",
            False,
        ),
        "nothing": ("delete", "session gone", False),
    }
    forced = plan(worktrees, force=True)
    assert forced["ignored"] == (
        "delete",
        "session gone; backing up ignored files (.env, build/, a.log and 1 more)",
        True,
    )
    assert {sid: (action, backup) for sid, (action, _, backup) in forced.items()} == {
        "ignored": ("delete", True),
        "nested": ("delete", True),
        "submodule": ("delete", True),
        "nothing": ("delete", False),
    }


def test_a_running_or_new_chat_comes_before_an_unreachable_remote() -> None:
    worktrees = [info("running"), info("new", last_activity=NOW - 60)]
    decided = plan_gc(
        worktrees,
        {"running": NOW - 30 * DAY},
        {"running"},
        now=NOW,
        idle_days=14,
        force=True,
        grace_seconds=600,
        unreachable={REPO: "down"},
    )
    assert [(d.action, d.reason) for d in decided] == [("keep", "session busy"), ("keep", "new worktree")]


def test_regenerable_caches_are_a_short_list_and_build_is_not_one() -> None:
    assert {
        "node_modules",
        "__pycache__",
        ".venv",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    } == REGENERABLE
    for path in ["node_modules/", "web/node_modules/", "src/__pycache__/", ".venv/", "a/.mypy_cache/x"]:
        assert regenerable(path), path
    for path in ["build/", ".env", "dist/", "node_modules.txt", "out/app.bin", "venv/"]:
        assert not regenerable(path), path


def test_paths_become_unique_valid_ref_names() -> None:
    names = _RefPaths()
    assert names.add("vendor/tool/") == "vendor/tool.git"
    assert names.add("vendor/tool") == "vendor/tool-2.git"
    assert names.add(".hidden/a b/x.lock/..") == "_hidden/a_b/x.lock_/__.git"
    assert names.add("vendor/tool/HEAD") == "vendor/tool/HEAD.git"  # beside vendor/tool.git/HEAD, no clash


def test_a_repo_whose_git_dir_is_not_deleted_with_the_worktree_is_left_alone(tmp_path: Path) -> None:
    """A `.git` file or link in the worktree pointing out of it: deleting the worktree does not
    delete that history, so the backup neither copies it nor writes into it."""
    make_remote(tmp_path / "remotes", tmp_path / "dev", "acme", "widget")
    projects = tmp_path / "data" / "projects"
    store = ProjectStore(
        projects / "repos",
        projects / "worktrees",
        f"file://{tmp_path}/remotes/{{owner}}/{{name}}.git",
        None,
        run_command=run_here,
    )
    repo = RepoName("acme", "widget")
    store.clone(repo)
    elsewhere = tmp_path / "elsewhere"  # out of the data dir
    git(tmp_path, "init", "-q", "-b", "main", str(elsewhere))
    commit_file(elsewhere, "theirs.txt", "not in the worktree\n")
    before = refs(elsewhere)

    wt = store.create_worktree(repo, "ses_1").path
    (wt / "by-file").mkdir()
    (wt / "by-file" / ".git").write_text(f"gitdir: {elsewhere / '.git'}\n")
    (wt / "by-file" / "work.txt").write_text("a file in the worktree\n")
    (wt / "by-link").mkdir()
    (wt / "by-link" / ".git").symlink_to(elsewhere / ".git")

    result = store.delete_worktree(repo, "ses_1", force=True)
    assert result.backup_refs == ("refs/dancodes/backup/ses_1/worktree",)
    clone_path = projects / "repos" / repo.slug
    assert (
        git(clone_path, "show", "refs/dancodes/backup/ses_1/worktree:by-file/work.txt")
        == "a file in the worktree"
    )
    assert refs(elsewhere) == before
    assert (elsewhere / "theirs.txt").is_file()


# -- the states, built for real in worktrees the daemon made --------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("gc_states"), GC_CONFIG) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        yield client


def clone(client: httpx.Client, repo: str) -> Path:
    made = client.post("/admin/repos/clone", json={"repo": repo, "wait": True})
    assert made.status_code == 201, made.text
    return Path(made.json()["repo"]["path"])


def run_gc(client: httpx.Client, *, force: bool) -> dict[str, Any]:
    response = client.post("/admin/gc", json={"dry_run": False, "force": force}, timeout=120)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def refs(path: Path, prefix: str = "") -> dict[str, str]:
    listed = git(path, "for-each-ref", "--format=%(refname) %(objectname)", *([prefix] if prefix else []))
    return dict(line.split(" ") for line in listed.splitlines())


def history(path: Path, ref: str) -> list[str]:
    return git(path, "log", "--format=%H", ref).splitlines()


def add_submodule(worktree: Path, lib: Remote, branch: str) -> None:
    """`lib` as a submodule of the worktree, committed and pushed: the superproject holds no work."""
    git(worktree, "-c", "protocol.file.allow=always", "submodule", "add", "-q", f"file://{lib.bare}", "lib")
    git(worktree, "commit", "-q", "-m", "add lib")
    git(worktree, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")


def test_every_state_is_kept_by_gc_backed_up_when_forced_and_carried_by_a_forced_repo_delete(
    stack: Stack, client: httpx.Client
) -> None:
    remote = stack.remote("acme", "states")
    remote.push_commit(".gitignore", IGNORE)
    lib = stack.remote("acme", "lib")  # the submodule's own remote
    repo_path = clone(client, "acme/states")
    outside = stack.root / "outside"  # beside the data dir, not in it
    outside.mkdir()
    (outside / "precious.txt").write_text("not ours to delete\n")

    chats: dict[str, tuple[str, Path]] = {}

    def chat(state: str) -> Path:
        chats[state] = new_chat(client, "acme/states", repo_path)
        return chats[state][1]

    def sid(state: str) -> str:
        return chats[state][0]

    with writing_as_owner_of(repo_path):  # as the agent: the trees are its own
        # ignored files: a secret, build output, and a clone inside build/ with a commit of its own;
        # caches beside them, which do not count
        w = chat("ignored")
        (w / ".env").write_text("SECRET=1\n")
        (w / "build" / "out").mkdir(parents=True)
        (w / "build" / "out" / "app.bin").write_bytes(b"\x00built\x01")
        (w / "node_modules" / "pkg").mkdir(parents=True)
        (w / "node_modules" / "pkg" / "index.js").write_text("cache\n")
        git(w, "clone", "-q", str(lib.bare), "build/dep")
        dep_commit = commit_file(w / "build" / "dep", "dep.txt", "a commit in a clone under build/\n")

        w = chat("caches")  # nothing but regenerable caches: nothing to keep
        (w / "node_modules" / "pkg").mkdir(parents=True)
        (w / "node_modules" / "pkg" / "index.js").write_text("cache\n")
        (w / "src" / "__pycache__").mkdir(parents=True)
        (w / "src" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\x00pyc")

        # a submodule whose side branch holds a commit on none of its remote-tracking refs; its HEAD is
        # back where the superproject records it, so the superproject itself shows nothing
        w = chat("submodule")
        add_submodule(w, lib, "with-lib")
        git(w / "lib", "switch", "-q", "-c", "side")
        side_commit = commit_file(w / "lib", "side.txt", "submodule work\n")
        git(w / "lib", "switch", "-q", "-")
        assert git(w, "status", "--porcelain") == ""
        # the submodule's git dir lives in the worktree's metadata and goes with the worktree
        assert (repo_path / ".git" / "worktrees" / sid("submodule") / "modules" / "lib").is_dir()

        w = chat("submodule_dirty")  # a commit on its detached HEAD, and an uncommitted file in it
        add_submodule(w, lib, "with-lib-2")
        git(w / "lib", "switch", "-q", "--detach")
        detached_sub = commit_file(w / "lib", "mine.txt", "detached in the submodule\n")
        (w / "lib" / "notes.txt").write_text("uncommitted in the submodule\n")

        w = chat("nested")  # an agent's repo inside the worktree, untracked: two branches and a tag
        tool = w / "vendor" / "tool"
        tool.mkdir(parents=True)
        git(tool, "init", "-q", "-b", "main")
        first = commit_file(tool, "a.txt", "one\n")
        git(tool, "switch", "-q", "-c", "exp")
        exp = commit_file(tool, "b.txt", "two\n")
        git(tool, "tag", "v0")
        git(tool, "switch", "-q", "main")

        w = chat("untracked")
        (w / "notes.md").write_text("a draft\n")

        w = chat("detached")
        git(w, "switch", "-q", "--detach")
        detached = commit_file(w, "detached.txt", "on no branch\n")

        w = chat("rebase")  # stopped on a conflict
        mine = commit_file(w, "README.md", "mine\n")
        git(w, "switch", "-q", "-c", "rebase-base", "origin/main")
        commit_file(w, "README.md", "theirs\n")
        git(w, "switch", "-q", "-")
        rebase = subprocess.run(
            ["git", "rebase", "rebase-base"], cwd=w, capture_output=True, text=True, **as_owner_of(w)
        )
        assert rebase.returncode != 0
        assert (repo_path / ".git" / "worktrees" / sid("rebase") / "rebase-merge").is_dir()

        w = chat("big")  # sparse: its size is what matters, not the disk it takes
        with (w / "data.bin").open("wb") as f:
            f.truncate(200 * MiB)

        w = chat("symlinks")  # links out of the data dir, one untracked and one ignored
        (w / "link-out").symlink_to(outside)
        (w / "precious.log").symlink_to(outside / "precious.txt")

        # clean worktrees whose work lives on in the clone's refs or on the remote
        w = chat("stashes")
        (w / "README.md").write_text("first stash\n")
        git(w, "stash", "-q")
        (w / "README.md").write_text("second stash\n")
        git(w, "stash", "-q")
        w = chat("second_branch")
        git(w, "switch", "-q", "-c", "second")
        second = commit_file(w, "second.txt", "on a second branch\n")
        git(w, "switch", "-q", "-")
        w = chat("pushed_elsewhere")
        pushed = commit_file(w, "pushed.txt", "pushed under another name\n")
        git(w, "push", "-q", "origin", "HEAD:refs/heads/other-name")
        w = chat("notes")
        git(w, "notes", "add", "-m", "a note", "HEAD")

        for session, path in chats.values():
            forget(client, session, path)

    # plain GC: what holds work is kept, what holds none goes
    kept = [
        "ignored",
        "submodule",
        "submodule_dirty",
        "nested",
        "untracked",
        "detached",
        "rebase",
        "big",
        "symlinks",
    ]
    gone = ["caches", "stashes", "second_branch", "pushed_elsewhere", "notes"]
    report = run_gc(client, force=False)
    decided = decisions(report)
    for state in kept:
        assert decided[sid(state)][0] == "keep", (state, decided[sid(state)])
        assert chats[state][1].is_dir(), state
    for state in gone:
        assert decided[sid(state)] == ("delete", "session gone"), state
        assert not chats[state][1].exists(), state
    assert report["errors"] == {}
    reasons = {state: decided[sid(state)][1] for state in kept}
    assert reasons["ignored"] == "session gone but ignored files (.env, build/)"
    assert reasons["submodule"] == "session gone but submodule lib (branch side: 1 commit on no remote)"
    assert (
        "submodule lib (detached HEAD: 1 commit on no remote; 1 uncommitted change)"
        in reasons["submodule_dirty"]
    )
    assert "nested repo vendor/tool" in reasons["nested"]
    assert reasons["untracked"] == "session gone but 1 uncommitted change"
    assert reasons["detached"] == "session gone but 1 commit on no remote"
    assert reasons["big"] == "session gone but 1 uncommitted change"
    assert reasons["symlinks"] == "session gone but 1 uncommitted change; ignored files (precious.log)"
    # what the deleted worktrees held lives on in the clone, or on the remote
    assert len(git(repo_path, "stash", "list").splitlines()) == 2
    assert git(repo_path, "rev-parse", "second") == second
    assert git(repo_path, "notes", "show", "main") == "a note"
    git(remote.bare, "cat-file", "-e", pushed)

    # forced GC: each is deleted after its work went into backup refs in the clone
    report = run_gc(client, force=True)
    assert report["errors"] == {}
    backup = {state: report["backups"][f"acme/states/{sid(state)}"] for state in kept}
    for state in kept:
        assert not chats[state][1].exists(), state
        assert not (repo_path / ".git" / "worktrees" / sid(state)).exists(), state
        assert backup[state] == f"refs/dancodes/backup/{sid(state)}/worktree"
    prefix = {state: ref.removesuffix("worktree") for state, ref in backup.items()}

    def show(ref: str, path: str, where: Path = repo_path) -> str:
        return git(where, "show", f"{ref}:{path}")

    assert show(backup["ignored"], ".env") == "SECRET=1"
    assert git(repo_path, "cat-file", "-s", f"{backup['ignored']}:build/out/app.bin") == "7"
    assert "node_modules" not in git(repo_path, "ls-tree", "--name-only", backup["ignored"])
    assert show(backup["ignored"], "build/dep/dep.txt") == "a commit in a clone under build/"
    assert history(repo_path, f"{prefix['ignored']}nested/build/dep.git/HEAD")[0] == dep_commit

    assert history(repo_path, f"{prefix['submodule']}submodules/lib.git/refs/heads/side")[0] == side_commit
    sub = f"{prefix['submodule_dirty']}submodules/lib.git/"
    assert git(repo_path, "rev-parse", f"{sub}HEAD") == detached_sub
    assert show(f"{sub}refs/dancodes/worktree", "notes.txt") == "uncommitted in the submodule"
    assert history(repo_path, f"{sub}refs/dancodes/worktree")[1] == detached_sub

    tool_refs = f"{prefix['nested']}nested/vendor/tool.git/"
    assert git(repo_path, "rev-parse", f"{tool_refs}HEAD") == first
    assert git(repo_path, "rev-parse", f"{tool_refs}refs/heads/exp") == exp
    assert git(repo_path, "rev-parse", f"{tool_refs}refs/tags/v0") == exp
    assert show(backup["nested"], "vendor/tool/a.txt") == "one"
    assert "refs/tags/v0" not in refs(repo_path)  # the nested repo's tags stay under the backup

    assert show(backup["untracked"], "notes.md") == "a draft"
    assert git(repo_path, "rev-parse", backup["detached"]) == detached
    assert "<<<<<<<" in show(backup["rebase"], "README.md")
    assert git(repo_path, "for-each-ref", "--contains", mine)  # the commit being rebased is on its branch
    assert git(repo_path, "cat-file", "-s", f"{backup['big']}:data.bin") == str(200 * MiB)
    links = git(repo_path, "ls-tree", backup["symlinks"], "link-out", "precious.log").splitlines()
    assert [line.split()[0] for line in links] == ["120000", "120000"]
    assert show(backup["symlinks"], "link-out") == str(outside)
    assert (outside / "precious.txt").read_text() == "not ours to delete\n"

    # a plain repo delete refuses, naming what only local refs hold
    refused = client.delete("/admin/repos/acme/states")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    for held in ["branch second: 1 commit on no remote", "notes commits: 1 commit on no remote", "2 stashes"]:
        assert held in error
    assert repo_path.is_dir()

    # a forced one pushes every ref into a bare backup: branches, notes, each stash, the backups
    deleted = client.delete("/admin/repos/acme/states", params={"force": "true"})
    assert deleted.status_code == 200, deleted.text
    assert not repo_path.exists()
    bare = Path(deleted.json()["backup"])
    assert bare.parent == stack.daemon.data_dir / "projects" / "backups"
    kept_refs = refs(bare)
    assert kept_refs["refs/heads/second"] == second
    assert "refs/notes/commits" in kept_refs
    assert "refs/heads/rebase-base" in kept_refs
    assert show("refs/dancodes/stash/0", "README.md", bare) == "second stash"
    assert show("refs/dancodes/stash/1", "README.md", bare) == "first stash"
    assert show(backup["ignored"], ".env", bare) == "SECRET=1"
    assert history(bare, f"{prefix['submodule']}submodules/lib.git/refs/heads/side")[0] == side_commit
    assert history(bare, f"{prefix['nested']}nested/vendor/tool.git/refs/heads/exp")[:2] == [exp, first]
    assert git(bare, "rev-parse", backup["detached"]) == detached
    assert git(bare, "for-each-ref", "--contains", mine)


def test_a_worktree_whose_remote_cannot_be_fetched_is_kept(stack: Stack, client: httpx.Client) -> None:
    remote = stack.remote("acme", "away")
    repo_path = clone(client, "acme/away")
    sid, w = new_chat(client, "acme/away", repo_path)
    pushed = commit_file(w, "feature.py", "print('only on a branch of its own')\n")
    git(w, "push", "-q", "origin", "HEAD:refs/heads/only-here")  # on the remote: nothing looks at risk
    forget(client, sid, w)

    # the remote loses the branch, and cannot be reached
    git(remote.bare, "update-ref", "-d", "refs/heads/only-here")
    moved = remote.bare.with_name("away-moved.git")
    remote.bare.rename(moved)
    try:
        for force in (False, True):
            action, reason = decisions(run_gc(client, force=force))[sid]
            assert action == "keep"
            assert reason.startswith("session gone but remote unreachable: fetch of acme/away failed: ")
            assert "\n" not in reason
            assert w.is_dir()
    finally:
        moved.rename(remote.bare)
    failed = [e for e in stack.daemon.events() if e.get("event") == "gc_fetch_failed"]
    assert {e["repo"] for e in failed} == {"acme/away"}

    # reachable again: the fetch prunes the branch, and the commit is on no remote any more
    assert decisions(run_gc(client, force=False))[sid] == ("keep", "session gone but 1 commit on no remote")
    report = run_gc(client, force=True)
    assert report["deleted"] == [f"acme/away/{sid}"]
    assert git(repo_path, "rev-parse", report["backups"][f"acme/away/{sid}"]) == pushed


def test_a_commit_only_a_local_tag_holds_stops_a_plain_repo_delete(
    stack: Stack, client: httpx.Client
) -> None:
    stack.remote("acme", "tagged")
    repo_path = clone(client, "acme/tagged")
    sid, w = new_chat(client, "acme/tagged", repo_path)
    tagged = commit_file(w, "release.txt", "tagged, then left\n")
    git(w, "tag", "keep-me")
    git(w, "reset", "-q", "--hard", "origin/main")
    forget(client, sid, w)
    # the worktree holds nothing: the tag is the clone's
    assert f"acme/tagged/{sid}" in run_gc(client, force=False)["deleted"]

    refused = client.delete("/admin/repos/acme/tagged")
    assert refused.status_code == 409, refused.text
    assert refused.json() == {
        "error": "repo acme/tagged holds work on no remote (tag keep-me: 1 commit on no remote); "
        "pass force to back it up and delete"
    }
    assert repo_path.is_dir()
    deleted = client.delete("/admin/repos/acme/tagged", params={"force": "true"})
    assert deleted.status_code == 200, deleted.text
    bare = Path(deleted.json()["backup"])
    assert git(bare, "rev-parse", "refs/tags/keep-me") == tagged
    assert git(bare, "show", "keep-me:release.txt") == "tagged, then left"


def test_a_running_chat_is_kept_even_once_idle_by_the_settings(stack: Stack, client: httpx.Client) -> None:
    stack.remote("acme", "running")
    repo_path = clone(client, "acme/running")
    sid, w = new_chat(client, "acme/running", repo_path)

    def status() -> str | None:
        for chat in client.get("/admin/chats").json()["chats"]:
            if chat["session_id"] == sid:
                return str(chat["status"])
        return None

    stack.llm.reset()
    stack.llm.hold()
    try:
        sent = client.post(
            f"/session/{sid}/prompt_async",
            headers={"x-opencode-directory": str(w)},
            json={"parts": [{"type": "text", "text": "take your time"}]},
        )
        assert sent.status_code == 204, sent.text
        stack.daemon.wait_for(lambda: status() == "busy", 30, "the chat running")
        # idle after 0.9 s: the running chat is a candidate as soon as the plan says it is busy
        assert stack.daemon.ctl("config", "set", "gc.idle_days", "0.00001").returncode == 0
        stack.daemon.wait_for(
            lambda: planned(client, sid) == ("keep", "session busy"), 30, "a plan past idle"
        )
        assert decisions(run_gc(client, force=True))[sid] == ("keep", "session busy")
        assert w.is_dir()
    finally:
        stack.llm.release()
    try:
        stack.daemon.wait_for(lambda: status() == "idle", 30, "the turn to end")
        # idle now and holding nothing: it goes
        stack.daemon.wait_for(
            lambda: planned(client, sid) == ("delete", "idle 0 days"), 30, "a plan to delete"
        )
        assert decisions(run_gc(client, force=False))[sid] == ("delete", "idle 0 days")
        assert not w.exists()
    finally:
        assert stack.daemon.ctl("config", "set", "gc.idle_days", "14").returncode == 0


def planned(client: httpx.Client, sid: str) -> tuple[str, str] | None:
    dry = client.post("/admin/gc", json={"dry_run": True})
    assert dry.status_code == 200, dry.text
    return decisions(dry.json()).get(sid)
