"""The git layer against real repositories: a bare "GitHub" under tmp_path, real pygit2, no mocks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hypothesis
import pygit2
import pytest
from hypothesis import strategies as st

from supervisor.errors import Conflict, GitFailed, InvalidName, NotFound
from supervisor.projects import (
    CloneProgress,
    ProjectStore,
    RepoName,
    WorktreeInfo,
    inside,
    plan_gc,
    validate_branch,
    validate_session_id,
)
from supervisor.projects._git import opened
from supervisor.projects.names import (
    BRANCH_PATTERN,
    NAME_PATTERN,
    OWNER_PATTERN,
    REPO_PATTERN,
    SESSION_ID_PATTERN,
    parse_worktree_slug,
    worktree_slug,
)
from tests.gitutil import Remote, commit_file, git, make_remote, run_here

REPO = RepoName("acme", "widget")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path / "remotes", tmp_path / "dev", REPO.owner, REPO.name)


@pytest.fixture
def store(tmp_path: Path) -> ProjectStore:
    projects = tmp_path / "data" / "projects"
    return ProjectStore(
        projects / "repos",
        projects / "worktrees",
        f"file://{tmp_path}/remotes/{{owner}}/{{name}}.git",
        None,
        run_command=run_here,
    )


@pytest.fixture
def cloned(store: ProjectStore, remote: Remote) -> ProjectStore:
    store.clone(REPO, CloneProgress())
    return store


def commit_in(path: Path, name: str, text: str = "work\n") -> str:
    return commit_file(path, name, text)


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["acme/widget", "a/b", "A-1/x.y_z-w", "acme/.github", "acme/_private", f"{'o' * 39}/{'n' * 100}"]
)
def test_repo_names_accepted(text: str) -> None:
    repo = RepoName.parse(text)
    assert str(repo) == text
    assert RepoName.from_slug(repo.slug) == repo


@pytest.mark.parametrize(
    "text",
    [
        "..",
        "../x",
        "x/..",
        "x/.",
        "%2e%2e/x",
        "x/%2e%2e",
        "/etc/passwd",
        "/abs",
        "a/b/c",
        "acme/",
        "-rf/x",
        "x/-rf",
        "a\nb/c",
        "a/b\nc",
        "a/b\x00",
        "a b/c",
        "a/b c",
        "x/y.git",
        "x/Y.GIT",
        "a_b/c",
        "a.b/c",
        f"{'o' * 40}/x",
        f"x/{'n' * 101}",
        "",
    ],
)
def test_repo_names_refused(text: str) -> None:
    with pytest.raises(InvalidName) as info:
        RepoName.parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert "\x00" not in message
    assert len(message) < 200
    assert message.startswith(("owner ", "repo "))


def test_repo_name_constructor_validates() -> None:
    with pytest.raises(InvalidName, match=r"^owner '-x' is not a GitHub owner name"):
        RepoName("-x", "y")
    with pytest.raises(InvalidName, match=r"must not end with '.git'"):
        RepoName("x", "y.git")


@pytest.mark.parametrize("sid", ["ses_3f1cA9", "a", "a-b", "x" * 64, "ses_"])
def test_session_ids_accepted(sid: str) -> None:
    assert validate_session_id(sid) == sid


@pytest.mark.parametrize(
    "sid", ["", "..", ".", "-rf", "_x", "a__b", "a/b", "a b", "a\n", "x\x00", "x" * 65, "%2e", "a.b"]
)
def test_session_ids_refused(sid: str) -> None:
    with pytest.raises(InvalidName, match=r"^session id "):
        validate_session_id(sid)


@pytest.mark.parametrize("branch", ["dancodes/ses_1", "main", "feature/x.y", "fix-ü", "a" * 200])
def test_branches_accepted(branch: str) -> None:
    assert validate_branch(branch) == branch
    assert pygit2.reference_is_valid_name(f"refs/heads/{branch}")


@pytest.mark.parametrize(
    "branch",
    ["", "-rf", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "x.lock", "/x", "x/",
     "a//b", ".x", "a/.x", "x.", "@", "HEAD", "a@{b", "a\nb", "a\x00", "a" * 201],
)  # fmt: skip
def test_branches_refused(branch: str) -> None:
    with pytest.raises(InvalidName, match=r"^branch") as info:
        validate_branch(branch)
    assert "\n" not in str(info.value)


def _accepts(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except InvalidName:
        return False
    return True


#: each JSON Schema pattern of the API's spec, and the validator it stands for
SPEC_PATTERNS: list[tuple[str, Callable[[str], object]]] = [
    (OWNER_PATTERN, lambda owner: RepoName(owner, "x")),
    (NAME_PATTERN, lambda name: RepoName("x", name)),
    (REPO_PATTERN, RepoName.parse),
    (SESSION_ID_PATTERN, validate_session_id),
    (BRANCH_PATTERN, validate_branch),
]
#: pieces that each rule is about, so random strings often break exactly one rule
TOKENS = [
    "a",
    "Z",
    "0",
    "-",
    "_",
    "__",
    ".",
    "..",
    "/",
    "//",
    "@",
    "@{",
    "{",
    ".lock",
    ".git",
    ".GIT",
    "HEAD",
]
TOKENS += [" ", "\n", "\x00", "\x7f", "~", "^", ":", "?", "*", "[", "\\", "ü", "a" * 38, "n" * 99, "x" * 63]
TRICKY = st.lists(st.sampled_from(TOKENS), max_size=8).map("".join)


#: one string per rule, each breaking it alone, and the limits
EDGES = [
    "a",
    "ses_1",
    "a/b",
    "a.b",
    "_x",
    "x_",
    "-x",
    "x-",
    ".x",
    "a/.x",
    "x.",
    "x.lock",
    "a/b.lock/c",
    "x.lockx",
]
EDGES += [
    "x/y.git",
    "x/Y.GIT",
    "x/y.gitx",
    "x/.",
    "x/..",
    "x/...",
    "a__b",
    "a_b",
    "@",
    "@a",
    "a@{b",
    "a@b",
    "HEAD",
]
EDGES += [
    "HEADS",
    "/x",
    "x/",
    "a//b",
    "a..b",
    "a b",
    "a\nb",
    "a\n",
    "a\x00",
    "ü",
    "a/b/c",
    "",
    "a" * 200,
    "a" * 201,
]
EDGES += ["o" * 39, "o" * 40, "x" * 64, "x" * 65, "n" * 100, "n" * 101, f"{'o' * 39}/{'n' * 100}"]


def _agree(value: str) -> None:
    for pattern, check in SPEC_PATTERNS:
        # JSON Schema's `$` is the end of the string; Python's also matches before a final newline
        matches = re.search(pattern.replace("$", r"\Z"), value) is not None
        assert matches == _accepts(check, value), (pattern, value)


@pytest.mark.parametrize("value", EDGES)
def test_the_spec_patterns_agree_with_the_validators_on_each_rule(value: str) -> None:
    _agree(value)


@hypothesis.settings(max_examples=1000, deadline=None, database=None)
@hypothesis.given(value=TRICKY)
def test_the_spec_patterns_agree_with_the_validators(value: str) -> None:
    _agree(value)


@pytest.mark.parametrize(("pattern", "check"), SPEC_PATTERNS)
def test_what_the_spec_patterns_generate_is_valid(pattern: str, check: Callable[[str], object]) -> None:
    @hypothesis.settings(max_examples=100, deadline=None, database=None)
    @hypothesis.given(value=st.from_regex(pattern.replace("$", r"\Z")))
    def valid(value: str) -> None:
        assert _accepts(check, value), (pattern, value)

    valid()


def test_long_bad_input_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidName) as info:
        validate_session_id("\n" * 500)
    assert len(str(info.value)) < 250
    assert "\\n" in str(info.value)
    assert "\n" not in str(info.value)


def test_slugs_split_back_unambiguously() -> None:
    for repo, sid in [
        (RepoName("a", "b__c"), "ses_1"),
        (RepoName("a", "x_"), "s_"),
        (RepoName("a", "_"), "s"),
        (RepoName("a-b", "__"), "s-1"),
    ]:
        assert parse_worktree_slug(worktree_slug(repo, sid)) == (repo, sid)
        assert RepoName.from_slug(repo.slug) == repo


def test_inside_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    assert inside(root, root / "ok") == (root / "ok").resolve()
    for bad in [root / ".." / "x", root / "link" / "x", Path("/etc/passwd"), root]:
        with pytest.raises(InvalidName):
            inside(root, bad)


def test_import_does_not_load_pygit2() -> None:
    code = "import supervisor.projects, sys; assert 'pygit2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- clones ------------------------------------------------------------------------------------


def test_clone_checks_out_files_with_a_plain_remote_url(
    store: ProjectStore, remote: Remote, tmp_path: Path
) -> None:
    phases: list[str] = []
    progress = CloneProgress(on_update=lambda p: phases.append(p.phase))
    info = store.clone(REPO, progress)
    path = store.repos_dir / "acme__widget"
    assert info.path == path.resolve()
    assert (path / "README.md").read_text() == "# widget\n"
    assert info.default_branch == "main"
    assert info.head is not None
    assert info.worktrees == 0
    with opened(path) as repo:
        assert repo.remotes["origin"].url == f"file://{tmp_path}/remotes/acme/widget.git"
    assert progress.phase == "done"
    assert progress.error is None
    assert progress.finished
    assert progress.total_objects > 0
    assert progress.received_objects == progress.total_objects
    assert progress.received_bytes > 0
    assert "receiving" in phases
    assert phases[-1] == "done"
    assert [r.repo for r in store.list_repos()] == [REPO]
    assert store.repo(REPO).head == info.head
    with pytest.raises(Conflict):
        store.clone(REPO, CloneProgress())


def test_clone_of_a_missing_remote_leaves_nothing(store: ProjectStore, remote: Remote) -> None:
    progress = CloneProgress()
    with pytest.raises(GitFailed, match=r"^clone of acme/nothing failed: ") as info:
        store.clone(RepoName("acme", "nothing"), progress)
    assert "\n" not in str(info.value)
    assert progress.phase == "failed"
    assert progress.error
    assert os.listdir(store.repos_dir) == []
    assert store.list_repos() == []


def test_cancelled_clone_leaves_nothing(store: ProjectStore, remote: Remote) -> None:
    seen: list[int] = []

    def cancel_after_first(progress: CloneProgress) -> None:
        seen.append(progress.received_objects)
        progress.cancel()

    progress = CloneProgress(on_update=cancel_after_first)
    with pytest.raises(GitFailed, match="cancelled"):
        store.clone(REPO, progress)
    assert len(seen) == 2  # the first transfer update, then the failure
    assert progress.phase == "failed"
    assert progress.error == "cancelled"
    assert os.listdir(store.repos_dir) == []


def test_fetch_follows_the_remote_head(cloned: ProjectStore, remote: Remote) -> None:
    remote.push_commit("dev.txt", branch="dev")
    git(remote.bare, "symbolic-ref", "HEAD", "refs/heads/dev")
    info = cloned.fetch(REPO)
    assert info.default_branch == "dev"
    assert info.last_fetch is not None


def test_missing_repo_is_not_found(store: ProjectStore) -> None:
    with pytest.raises(NotFound):
        store.repo(REPO)
    with pytest.raises(NotFound):
        store.create_worktree(REPO, "ses_1")
    with pytest.raises(NotFound):
        store.delete_repo(REPO)


# -- worktrees ---------------------------------------------------------------------------------


def test_worktree_starts_from_freshly_fetched_origin(cloned: ProjectStore, remote: Remote) -> None:
    sha = remote.push_commit("new.txt", "pushed after the clone\n")
    wt = cloned.create_worktree(REPO, "ses_1")
    assert wt.path == cloned.worktrees_dir.resolve() / "acme__widget__ses_1"
    assert (wt.path / "new.txt").read_text() == "pushed after the clone\n"
    assert (wt.path / "README.md").exists()
    assert wt.branch == "dancodes/ses_1"
    assert sha.startswith(wt.head or "-")
    assert (wt.dirty, wt.changed_files, wt.unpushed) == (False, 0, 0)
    assert cloned.repo(REPO).worktrees == 1
    with pytest.raises(Conflict):
        cloned.create_worktree(REPO, "ses_1")


def test_worktree_on_a_branch_that_exists_on_origin(cloned: ProjectStore, remote: Remote) -> None:
    remote.push_commit("feature.txt", branch="feature")
    wt = cloned.create_worktree(REPO, "ses_2", branch="feature")
    assert wt.branch == "feature"
    assert (wt.path / "feature.txt").exists()
    with opened(cloned.repos_dir / REPO.slug) as repo:
        assert repo.branches.local["feature"].upstream_name == "refs/remotes/origin/feature"
    with pytest.raises(Conflict, match="checked out by session ses_2"):
        cloned.create_worktree(REPO, "ses_3", branch="feature")


def test_worktree_on_the_branch_the_clone_has_checked_out(cloned: ProjectStore, remote: Remote) -> None:
    remote.push_commit("later.txt")
    wt = cloned.create_worktree(REPO, "ses_main", branch="main")
    assert wt.branch == "main"
    assert (wt.path / "later.txt").exists()  # the stale local main was fast-forwarded


def test_failed_fetch_fails_the_worktree_and_leaves_nothing(cloned: ProjectStore, remote: Remote) -> None:
    os.rename(remote.bare, remote.bare.with_suffix(".gone"))
    with pytest.raises(GitFailed, match=r"^fetch of acme/widget failed"):
        cloned.create_worktree(REPO, "ses_1")
    assert not cloned.worktrees_dir.exists() or os.listdir(cloned.worktrees_dir) == []


def test_listing_reports_work_without_touching_it(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "ses_1")
    commit_in(wt.path, "a.txt")
    commit_in(wt.path, "b.txt")
    (wt.path / "README.md").write_text("changed\n")
    (wt.path / "untracked.txt").write_text("new\n")
    (wt.path / "debug.log").write_text("ignored\n")
    gitdir = cloned.repos_dir / REPO.slug / ".git" / "worktrees" / "ses_1"
    before = (gitdir / "index").stat().st_mtime_ns
    time.sleep(0.01)
    [info] = cloned.list_worktrees()
    assert info == cloned.worktree(REPO, "ses_1")
    assert (info.repo, info.session_id, info.branch) == (REPO, "ses_1", "dancodes/ses_1")
    assert (info.dirty, info.changed_files, info.unpushed) == (True, 2, 2)
    assert info.ignored == ("debug.log",)
    assert info.at_risk == ["2 commits on no remote", "2 uncommitted changes", "ignored files (debug.log)"]
    assert info.size is not None  # a listing measures it
    assert info.size > 0
    assert info.last_activity >= time.time() - 60
    assert (gitdir / "index").stat().st_mtime_ns == before
    assert info.as_json()["repo"] == "acme/widget"
    usage = cloned.disk_usage()
    assert usage["worktrees"] == [{"repo": "acme/widget", "session_id": "ses_1", "size": info.size}]
    assert usage["total"] == usage["repos_total"] + usage["worktrees_total"] > info.size


def test_delete_refuses_work_at_risk_then_backs_it_up(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "ses_1")
    committed = commit_in(wt.path, "a.txt")
    with pytest.raises(Conflict, match="has 1 commit on no remote; pass force"):
        cloned.delete_worktree(REPO, "ses_1")
    (wt.path / "README.md").write_text("changed\n")
    (wt.path / "notes.txt").write_text("uncommitted\n")
    (wt.path / "debug.log").write_text("ignored\n")
    with pytest.raises(
        Conflict, match=r"has 1 commit on no remote; 2 uncommitted changes; ignored files \(debug.log\); pass"
    ):
        cloned.delete_worktree(REPO, "ses_1")
    assert wt.path.is_dir()

    result = cloned.delete_worktree(REPO, "ses_1", force=True)
    assert result.backup_ref == "refs/dancodes/backup/ses_1/worktree"
    assert result.backup_refs == ("refs/dancodes/backup/ses_1/worktree",)
    assert result.branch_deleted == "dancodes/ses_1"
    assert not wt.path.exists()
    clone_path = cloned.repos_dir / REPO.slug
    assert not (clone_path / ".git" / "worktrees" / "ses_1").exists()
    with opened(clone_path) as repo:
        assert repo.list_worktrees() == []
        assert "dancodes/ses_1" not in repo.branches.local
        backup = repo.references[result.backup_ref].peel(pygit2.Commit)
        assert [str(p) for p in backup.parent_ids] == [committed]
        assert backup.tree["notes.txt"].data == b"uncommitted\n"  # type: ignore[union-attr]
        assert backup.tree["README.md"].data == b"changed\n"  # type: ignore[union-attr]
        assert "a.txt" in backup.tree
        assert backup.tree["debug.log"].data == b"ignored\n"  # type: ignore[union-attr]
    assert cloned.list_worktrees() == []
    with pytest.raises(NotFound):
        cloned.delete_worktree(REPO, "ses_1")


def test_delete_of_pushed_work_needs_no_backup(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "ses_1")
    commit_in(wt.path, "a.txt")
    git(wt.path, "push", "-q", "origin", "HEAD:refs/heads/dancodes/ses_1")
    cloned.fetch(REPO)
    result = cloned.delete_worktree(REPO, "ses_1")
    assert result.backup_ref is None
    assert result.branch_deleted == "dancodes/ses_1"
    # a second worktree for the same session picks the branch up from origin
    again = cloned.create_worktree(REPO, "ses_1")
    assert (again.path / "a.txt").exists()


def test_delete_repo_refuses_worktrees_unless_forced(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "ses_1")
    (wt.path / "notes.txt").write_text("uncommitted\n")
    with pytest.raises(Conflict, match=r"still has 1 worktree \(ses_1\)"):
        cloned.delete_repo(REPO)
    result = cloned.delete_repo(REPO, force=True)
    assert not (cloned.repos_dir / REPO.slug).exists()
    assert not wt.path.exists()
    assert [w.backup_ref for w in result.worktrees] == ["refs/dancodes/backup/ses_1/worktree"]
    assert result.backup is not None
    assert result.backup.parent == cloned.backups_dir.resolve()
    with opened(result.backup) as backup:
        tree = backup.references["refs/dancodes/backup/ses_1/worktree"].peel(pygit2.Commit).tree
        assert tree["notes.txt"].data == b"uncommitted\n"  # type: ignore[union-attr]
    assert cloned.list_repos() == []


def test_delete_repo_with_nothing_at_risk_makes_no_backup(cloned: ProjectStore, remote: Remote) -> None:
    cloned.create_worktree(REPO, "ses_1")
    result = cloned.delete_repo(REPO, force=True)
    assert result.backup is None
    assert result.worktrees[0].backup_ref is None


# -- gc ----------------------------------------------------------------------------------------


def test_gc_keeps_work_and_live_sessions(cloned: ProjectStore, remote: Remote) -> None:
    unpushed = cloned.create_worktree(REPO, "unpushed")
    commit_in(unpushed.path, "a.txt")
    dirty = cloned.create_worktree(REPO, "dirty")
    (dirty.path / "notes.txt").write_text("x\n")
    merged = cloned.create_worktree(REPO, "merged")
    commit_in(merged.path, "m.txt")
    git(merged.path, "push", "-q", "origin", "HEAD:refs/heads/main")
    cloned.fetch(REPO)
    cloned.create_worktree(REPO, "busy")
    cloned.create_worktree(REPO, "active")
    worktrees = {w.session_id: w for w in cloned.list_worktrees()}
    assert worktrees["merged"].unpushed == 0

    now = time.time() + 30 * 86400  # a month later: every worktree is idle on disk
    sessions = {"active": now - 3600, "busy": now - 40 * 86400, "merged": now - 20 * 86400}

    def plan(force: bool) -> dict[str, tuple[str, str, bool]]:
        decisions = plan_gc(list(worktrees.values()), sessions, {"busy"}, now=now, idle_days=14, force=force)
        return {d.worktree.session_id: (d.action, d.reason, d.backup) for d in decisions}

    assert plan(force=False) == {
        "unpushed": ("keep", "session gone but 1 commit on no remote", False),
        "dirty": ("keep", "session gone but 1 uncommitted change", False),
        "merged": ("delete", "idle 20 days", False),
        "busy": ("keep", "session busy", False),
        "active": ("keep", "session active", False),
    }
    forced = plan(force=True)
    assert forced["unpushed"] == ("delete", "session gone; backing up 1 commit on no remote", True)
    assert forced["dirty"][0::2] == ("delete", True)
    assert forced["busy"][0] == forced["active"][0] == "keep"

    # planning is a dry run: nothing changed on disk
    assert {w.session_id: w for w in cloned.list_worktrees()} == worktrees


def test_gc_grace_and_stale_plans(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "fresh")
    now = time.time()
    [keep] = plan_gc([wt], {}, set(), now=now, idle_days=14, force=False, grace_seconds=600)
    assert (keep.action, keep.reason) == ("keep", "new worktree")
    [stale] = plan_gc([wt], {}, set(), now=now + 3600, idle_days=14, force=False, grace_seconds=600)
    assert (stale.action, stale.backup) == ("delete", False)
    # the housekeeper carries a "delete" out through the store, which reads the worktree again
    (wt.path / "late.txt").write_text("written after the plan\n")
    with pytest.raises(Conflict, match="1 uncommitted change"):
        cloned.delete_worktree(REPO, "fresh", force=stale.backup)
    assert (wt.path / "late.txt").exists()


def test_worktree_info_is_a_plain_snapshot(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "ses_1")
    assert isinstance(wt, WorktreeInfo)
    assert wt.key == "acme/widget/ses_1"
    assert set(wt.as_json()) >= {"repo", "session_id", "path", "branch", "dirty", "unpushed", "size"}


def test_a_failed_worktree_add_leaves_no_branch_nor_directory(cloned: ProjectStore, remote: Remote) -> None:
    gitdir = cloned.repos_dir / REPO.slug / ".git" / "worktrees"
    gitdir.mkdir()
    (gitdir / "ses_1").write_text("in the way\n")  # libgit2 cannot make the worktree's gitdir
    with pytest.raises(GitFailed, match=r"^adding worktree ses_1 to acme/widget failed: "):
        cloned.create_worktree(REPO, "ses_1")
    assert os.listdir(cloned.worktrees_dir) == []
    with opened(cloned.repos_dir / REPO.slug) as repo:
        assert "dancodes/ses_1" not in repo.branches.local


def test_a_new_worktree_is_one_git_itself_reads_and_its_answer_is_what_a_listing_says(
    cloned: ProjectStore, remote: Remote
) -> None:
    made = cloned.create_worktree(REPO, "ses_1")
    clone = cloned.repos_dir / REPO.slug
    listing = git(clone, "worktree", "list", "--porcelain").split("\n\n")
    head = git(made.path, "rev-parse", "HEAD")
    assert f"worktree {made.path}\nHEAD {head}\nbranch refs/heads/dancodes/ses_1" in listing
    assert git(made.path, "status", "--porcelain", "--ignored") == ""  # every file as committed
    assert sorted(os.listdir(clone / ".git" / "worktrees")) == ["ses_1"]  # no temporary name left
    assert made.size is None  # not measured: that would walk every file again
    listed = cloned.worktree(REPO, "ses_1")
    assert listed.size is not None
    assert listed.size > 0
    assert made == WorktreeInfo(**{**listed.__dict__, "size": None, "last_activity": made.last_activity})
    assert made.as_json()["size"] is None


def test_a_reused_branch_answers_with_its_commits_on_no_remote(cloned: ProjectStore, remote: Remote) -> None:
    remote.push_commit("feature.txt", branch="feature")
    first = cloned.create_worktree(REPO, "ses_1", branch="feature")
    local = commit_in(first.path, "local.txt")
    cloned.delete_worktree(REPO, "ses_1", force=True)  # the branch is not ours to delete: it stays
    again = cloned.create_worktree(REPO, "ses_2", branch="feature")
    assert (again.branch, again.unpushed, again.dirty) == ("feature", 1, False)
    assert local.startswith(again.head or "-")
    assert again.at_risk == ["1 commit on no remote"]
    assert (again.path / "local.txt").exists()


def test_a_failed_checkout_says_why_and_leaves_nothing(cloned: ProjectStore, remote: Remote) -> None:
    remote.push_commit(".gitattributes", "*.txt filter=boom\n")
    remote.push_commit("a.txt", "smudged on checkout\n")
    clone = cloned.repos_dir / REPO.slug
    git(clone, "config", "filter.boom.smudge", "false")  # a filter that fails, and must not be skipped
    git(clone, "config", "filter.boom.required", "true")
    with pytest.raises(GitFailed) as failed:
        cloned.create_worktree(REPO, "ses_1")
    reason = "git read-tree: a.txt: smudge filter boom failed"
    assert str(failed.value) == f"checking out acme__widget__ses_1 failed: {reason}"
    assert os.listdir(cloned.worktrees_dir) == []
    assert os.listdir(clone / ".git" / "worktrees") == []
    with opened(clone) as repo:
        assert "dancodes/ses_1" not in repo.branches.local
    git(clone, "config", "--unset", "filter.boom.required")  # skipped now: the same create works
    assert cloned.create_worktree(REPO, "ses_1").branch == "dancodes/ses_1"


def test_a_worktree_half_registered_by_a_killed_daemon_is_made_anew(
    cloned: ProjectStore, remote: Remote
) -> None:
    admin = cloned.repos_dir / REPO.slug / ".git" / "worktrees"
    (admin / ".adding-ses_1").mkdir(parents=True)
    (admin / ".adding-ses_1" / "commondir").write_text("../..\n")  # killed before gitdir and HEAD
    assert cloned.list_worktrees() == []
    wt = cloned.create_worktree(REPO, "ses_1")
    assert os.listdir(admin) == ["ses_1"]
    assert git(wt.path, "status", "--porcelain") == ""


def test_registering_a_worktree_never_takes_over_nor_removes_a_directory_it_did_not_make(
    cloned: ProjectStore, remote: Remote
) -> None:
    from supervisor.projects._git import register_worktree

    theirs = cloned.worktrees_dir / "someone-elses"
    theirs.mkdir(parents=True)
    (theirs / "work.txt").write_text("not ours\n")
    with opened(cloned.repos_dir / REPO.slug) as clone, pytest.raises(FileExistsError):
        register_worktree(clone, "ses_1", theirs, "main")
    assert (theirs / "work.txt").read_text() == "not ours\n"
    assert os.listdir(theirs) == ["work.txt"]
    assert not (cloned.repos_dir / REPO.slug / ".git" / "worktrees").exists()


def test_backup_holds_nested_repos_links_and_deletions(cloned: ProjectStore, remote: Remote) -> None:
    wt = cloned.create_worktree(REPO, "ses_1")
    nested = wt.path / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    commit_file(nested, "lib.py", "print()\n")  # an agent's `git clone` inside the worktree
    (wt.path / "run.sh").write_text("#!/bin/sh\n")
    (wt.path / "run.sh").chmod(0o755)
    (wt.path / "link").symlink_to("README.md")
    (wt.path / ".gitignore").unlink()
    result = cloned.delete_worktree(REPO, "ses_1", force=True)
    assert result.backup_ref is not None
    # the nested repo's history too, not only its files
    nested_head = "refs/dancodes/backup/ses_1/nested/vendor/lib.git/HEAD"
    assert nested_head in result.backup_refs
    with opened(cloned.repos_dir / REPO.slug) as repo:
        assert repo.references[nested_head].peel(pygit2.Commit).message == "add lib.py\n"
        tree = repo.references[result.backup_ref].peel(pygit2.Commit).tree
        assert (tree / "vendor" / "lib" / "lib.py").data == b"print()\n"  # type: ignore[operator,union-attr]
        assert ".git" not in (tree / "vendor" / "lib")  # type: ignore[operator]
        assert tree["run.sh"].filemode == pygit2.enums.FileMode.BLOB_EXECUTABLE
        assert tree["link"].filemode == pygit2.enums.FileMode.LINK
        assert ".gitignore" not in tree
        assert "README.md" in tree


def test_the_token_goes_to_https_only_once_and_never_into_messages(tmp_path: Path) -> None:
    from pygit2.enums import CredentialType

    from supervisor.projects._git import AuthRejected, Callbacks

    callbacks = Callbacks("https://github.com/a/b.git", "ghp_secret")
    plain = CredentialType.USERPASS_PLAINTEXT
    assert isinstance(callbacks.credentials("https://github.com/a/b.git", None, plain), pygit2.UserPass)
    with pytest.raises(AuthRejected):  # a second ask means the token was refused: stop, do not loop
        callbacks.credentials("https://github.com/a/b.git", None, plain)
    with pytest.raises(pygit2.Passthrough):
        Callbacks("https://example.com/a/b.git", "ghp_secret").credentials(
            "http://example.com/a/b.git", None, plain
        )
    with pytest.raises(pygit2.Passthrough):
        Callbacks("https://github.com/a/b.git", None).credentials("https://github.com/a/b.git", None, plain)

    store = ProjectStore(
        tmp_path / "r",
        tmp_path / "w",
        "https://github.com/{owner}/{name}.git",
        "ghp_secret",
        run_command=run_here,
    )
    assert store.url(REPO) == "https://github.com/acme/widget.git"
    error = store._failed("clone of acme/widget", pygit2.GitError("bad https://ghp_secret@github.com\nx"))
    assert str(error) == "clone of acme/widget failed: bad https://***@github.com x"
    assert "ghp_secret" not in str(store._failed("fetch", AuthRejected()))


def test_a_clone_cleans_up_after_a_killed_one(store: ProjectStore, remote: Remote) -> None:
    leftover = store.repos_dir / ".clone-acme__widget-deadbeef"
    (leftover / "objects").mkdir(parents=True)
    other = store.repos_dir / ".clone-acme__widget-x-deadbeef"  # acme/widget-x's, maybe running
    other.mkdir()
    store.clone(REPO)
    assert sorted(os.listdir(store.repos_dir)) == [other.name, "acme__widget"]


def test_a_worktree_without_its_git_file_opens_no_other_repo(
    cloned: ProjectStore, remote: Remote, tmp_path: Path
) -> None:
    git(tmp_path, "init", "-q")  # a repo above the data dir must not be mistaken for the worktree
    wt = cloned.create_worktree(REPO, "ses_1")
    (wt.path / ".git").unlink()
    with pytest.raises(GitFailed, match=r"^reading worktree ses_1 of acme/widget failed"):
        cloned.worktree(REPO, "ses_1")
    assert cloned.list_worktrees() == []
    with pytest.raises(GitFailed, match=r"^deleting worktree ses_1 of acme/widget failed"):
        cloned.delete_worktree(REPO, "ses_1")
    assert wt.path.is_dir()


def test_worktrees_made_from_several_threads_at_once(cloned: ProjectStore, remote: Remote) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda i: cloned.create_worktree(REPO, f"ses_{i}"), range(6)))
        listed = list(pool.map(lambda _: cloned.list_worktrees(), range(4)))
    assert sorted(w.session_id for w in made) == [f"ses_{i}" for i in range(6)]
    assert all(len(found) == 6 for found in listed)


def test_the_diff_holds_commits_changes_and_untracked_files_since_the_merge_base(
    cloned: ProjectStore, remote: Remote
) -> None:
    wt = cloned.create_worktree(REPO, "ses_diff").path
    remote.push_commit("upstream.txt", "someone else's\n")  # main moves on: not part of the chat's change
    commit_file(wt, "feature.py", "print('hi')\n")
    (wt / "README.md").write_text("# widget\nmore\n")  # uncommitted
    (wt / "notes" / "deep").mkdir(parents=True)
    (wt / "notes" / "deep" / "todo.md").write_text("a\nb\n")  # untracked, in a new directory
    (wt / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (wt / "debug.log").write_text("ignored\n")  # .gitignore has *.log: not the chat's change
    cloned.fetch(REPO)

    diff = cloned.diff(REPO, "ses_diff").as_json()
    files = {f["path"]: f for f in diff["files"]}
    assert set(files) == {"feature.py", "README.md", "notes/deep/todo.md", "logo.png"}
    assert files["feature.py"] | {"status": "added", "additions": 1, "deletions": 0} == files["feature.py"]
    assert (files["README.md"]["status"], files["README.md"]["additions"]) == ("modified", 1)
    assert files["notes/deep/todo.md"]["additions"] == 2
    assert files["logo.png"]["binary"] is True
    assert (diff["additions"], diff["branch"], diff["base_branch"]) == (4, "dancodes/ses_diff", "main")
    assert "+print('hi')" in diff["patch"]
    assert "upstream.txt" not in diff["patch"]
    assert diff["truncated"] is False


def test_a_big_patch_is_capped_but_every_file_is_listed(cloned: ProjectStore) -> None:
    from supervisor.projects import _git as git
    from supervisor.projects.diff import worktree_diff

    wt = cloned.create_worktree(REPO, "ses_big").path
    for n in range(5):
        (wt / f"f{n}.txt").write_text("line\n" * 50)
    with git.opened(wt) as repo:
        capped = worktree_diff(repo, max_patch_bytes=400).as_json()
    assert capped["truncated"] is True
    assert len(capped["patch"].encode()) <= 400
    assert len(capped["files"]) == 5
    with pytest.raises(NotFound):
        cloned.diff(REPO, "ses_nowhere")
