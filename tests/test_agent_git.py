"""The agent's git reaches GitHub (issue 10): its commits have an identity in a fresh container, its bare
`git push` reaches a GitHub stand-in that demands the token (git over HTTPS on loopback, tests/githttps.py),
and the token is in no file; with `git.agent_token = false` it is nowhere in the agent's environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from supervisor import agent_git
from tests.conftest import ONLY_TEST_SERVICES, DaemonProc, daemon_env, reachable_by_agent, toml_value
from tests.githttps import USER, GitHubStandIn
from tests.gitutil import git
from tests.stack import Stack, running_stack
from tests.test_agent import PROBE_SERVICE, run_as_agent, section

TOKEN = "ghp_thephonesowntoken0123456789abcdefABCD"


# -- pure ---------------------------------------------------------------------------------------------


def test_identity_comes_from_the_config_then_github_then_a_plain_local_one() -> None:
    github = {"login": "octo", "id": 42, "name": "Octo Cat"}
    assert agent_git.choose_identity("Ann", "ann@example.com", github) == agent_git.Identity(
        "Ann", "ann@example.com", "config"
    )
    from_github = agent_git.choose_identity("", "", github)
    assert (from_github.name, from_github.email) == ("Octo Cat", "42+octo@users.noreply.github.com")
    assert agent_git.choose_identity("", "ann@example.com", github).name == "Octo Cat"
    nameless = agent_git.choose_identity("", "", {"login": "octo", "id": 42, "name": None})
    assert nameless.name == "octo"
    for broken in (None, {}, {"login": "octo"}, {"login": "", "id": 1}, {"login": "x", "id": True}):
        local = agent_git.choose_identity("", "", broken)
        assert (local.name, local.email, local.source) == (
            agent_git.LOCAL_NAME,
            agent_git.LOCAL_EMAIL,
            "local",
        )


def test_the_token_reaches_the_agent_only_for_the_remotes_origin_and_only_when_allowed() -> None:
    env = agent_git.credential_env(TOKEN, "https://github.com/{owner}/{name}.git", agent_token=True)
    assert env["GH_TOKEN"] == TOKEN
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    assert env["GIT_CONFIG_VALUE_0"] == agent_git.token_header(TOKEN)
    assert agent_git.credential_env(TOKEN, "https://github.com/{owner}/{name}.git", agent_token=False) == {}
    assert agent_git.credential_env(None, "https://github.com/{owner}/{name}.git", agent_token=True) == {}
    # a remote that is not https gets no header (the token never goes over plain http)
    plain = agent_git.credential_env(TOKEN, "http://example.com/{owner}/{name}.git", agent_token=True)
    assert "GIT_CONFIG_COUNT" not in plain
    with_port = agent_git.remote_origin("https://user@git.example:8443/{owner}/{name}.git")
    assert with_port == "https://git.example:8443"


# -- for real -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def github_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, GitHubStandIn]]:
    root = tmp_path_factory.mktemp("agentgit")
    reachable_by_agent(root)
    (root / "remotes").mkdir()
    home = root / "empty-home"  # a fresh container: no ~/.gitconfig
    home.mkdir()
    with GitHubStandIn(root / "remotes", TOKEN, root / "tls") as github:
        env = {
            "GITHUB_TOKEN": TOKEN,
            "HOME": str(home),
            "SSL_CERT_FILE": str(github.ca),  # the daemon's libgit2 and httpx; the agent gets it too
            "GIT_SSL_CAINFO": str(github.ca),  # the agent's git (curl)
        }
        extra = f"github_api = {toml_value(github.api)}\n"  # continues the [git] table
        with running_stack(
            root, extra, env=env, production_ports=False, remote_url=github.remote_url
        ) as stack:
            yield stack, github


def test_the_agents_commit_has_an_identity_and_its_bare_push_reaches_github(
    github_stack: tuple[Stack, GitHubStandIn],
) -> None:
    stack, github = github_stack
    remote = stack.remote("acme", "shipit")
    command = (
        "echo shipped > ship.txt && git add ship.txt && git commit -q -m 'ship it' && git push -q 2>&1; "
        # gh authenticates from the same environment (compared, never printed: what a tool prints is
        # kept in the chat's history, on disk)
        'echo "push rc=$?"; [ "$(gh auth token 2>/dev/null)" = "$GH_TOKEN" ] && echo gh-token-ok; '
        "echo '=== env ==='; env | cut -d= -f1"
    )
    with stack.signed_in() as client:
        output, wt = run_as_agent(stack, client, command, repo="acme/shipit")
    assert "push rc=0" in output, output
    assert "gh-token-ok" in output, output
    sid = wt.name.rsplit("__", 1)[1]
    pushed = git(remote.bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", f"dancodes/{sid}")
    identity = f"{USER['name']} <{USER['id']}+{USER['login']}@users.noreply.github.com>"
    assert pushed == f"{identity}|{identity}|ship it"
    # the git requests carried the token; one without it was refused (git asks first without)
    git_requests = [s for s in github.seen if s.path.startswith("/acme/shipit.git/")]
    assert any(s.authorized and "receive-pack" in s.path for s in git_requests)
    env = section(output, "env")
    assert "GH_TOKEN" in env.split()
    assert "GIT_CONFIG_VALUE_0" in env.split()
    assert "AUTH_" not in env

    # the token is in no file: not under data_dir (the clone's config, opencode's state, the
    # agent's home) and not in the HOME the daemon was given
    header = agent_git.token_header(TOKEN).partition("Basic ")[2]
    for top in (stack.daemon.data_dir, stack.root / "empty-home"):
        for path in top.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                assert TOKEN.encode() not in data, path
                assert header.encode() not in data, path
    assert not re.search(r"https://[^/\s]*@", git(wt, "remote", "get-url", "origin"))


def test_without_agent_token_the_agent_has_no_token_at_all(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    env = {**daemon_env(tmp_path), "GITHUB_TOKEN": TOKEN}
    extra = '[git]\nremote_url = "https://github.com/{owner}/{name}.git"\nagent_token = false\n'
    extra += 'user_name = "Ann"\nuser_email = "ann@example.com"\n'
    daemon = start_daemon(ONLY_TEST_SERVICES + PROBE_SERVICE + extra, env=env, wait_healthy=False)
    env_file = daemon.data_dir / "home" / "peek-env"
    daemon.wait_for(lambda: env_file.exists() and env_file.stat().st_size > 0, 20, "the peek service")
    text = env_file.read_text()
    assert TOKEN not in text
    assert agent_git.token_header(TOKEN).partition("Basic ")[2] not in text
    assert "GH_TOKEN" not in text
    assert "GIT_CONFIG_COUNT" not in text
    assert "GIT_AUTHOR_NAME=Ann\n" in text  # the identity is given all the same
    assert "GIT_COMMITTER_EMAIL=ann@example.com\n" in text


def test_the_phone_reads_the_diff_commits_and_pushes_a_chat_whose_agent_only_committed(
    github_stack: tuple[Stack, GitHubStandIn],
) -> None:
    stack, github = github_stack
    remote = stack.remote("acme", "publish")
    command = "echo a > a.txt && git add a.txt && git commit -q -m 'agent: a' && echo b > b.txt && echo done"
    with stack.signed_in() as client:
        output, wt = run_as_agent(stack, client, command, repo="acme/publish")
        assert "done" in output, output
        sid = wt.name.rsplit("__", 1)[1]
        base = f"/admin/worktrees/acme/publish/{sid}"

        diff = client.get(f"{base}/diff").json()
        assert {f["path"]: f["status"] for f in diff["files"]} == {"a.txt": "added", "b.txt": "added"}
        assert "+b" in diff["patch"]

        committed = client.post(f"{base}/commit", json={"message": "the rest"})
        assert committed.status_code == 201, committed.text
        assert committed.json()["files"] == 1
        again = client.post(f"{base}/commit", json={})
        assert again.status_code == 409, again.text
        assert "nothing to commit" in again.json()["error"]

        before = len(github.seen)
        pushed = client.post(f"{base}/push", json={})
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["branch"] == f"dancodes/{sid}"
        assert any(s.authorized and "receive-pack" in s.path for s in github.seen[before:])
        subjects = git(remote.bare, "log", "--format=%s|%an", f"dancodes/{sid}", "-2").splitlines()
        assert subjects == [f"the rest|{USER['name']}", f"agent: a|{USER['name']}"]
        assert client.get(f"/admin/worktrees/acme/publish/{sid}").json()["worktree"]["unpushed"] == 0

        # someone else pushed to the branch meanwhile: a plain push is refused, a forced one wins
        git(remote.dev, "fetch", "-q", "origin")
        remote.push_commit("theirs.txt", "theirs\n", branch=f"dancodes/{sid}")
        (wt / "c.txt").write_text("c\n")
        assert client.post(f"{base}/commit", json={"message": "mine"}).status_code == 201
        refused = client.post(f"{base}/push", json={})
        assert refused.status_code == 409, refused.text
        assert "not a fast-forward" in refused.json()["error"]
        assert TOKEN not in refused.text
        forced = client.post(f"{base}/push", json={"force": True})
        assert forced.status_code == 200, forced.text
        assert git(remote.bare, "log", "-1", "--format=%s", f"dancodes/{sid}") == "mine"


def test_the_phone_opens_the_pr_once_and_githubs_refusals_are_one_line(
    github_stack: tuple[Stack, GitHubStandIn],
) -> None:
    stack, github = github_stack
    stack.remote("acme", "pulls")
    command = (
        "echo feature > feature.txt && git add feature.txt && git commit -q -m 'add the feature' && echo ok"
    )
    with stack.signed_in() as client:
        output, wt = run_as_agent(stack, client, command, repo="acme/pulls")
        assert "ok" in output, output
        sid = wt.name.rsplit("__", 1)[1]
        base = f"/admin/worktrees/acme/pulls/{sid}"

        opened = client.post(f"{base}/pr", json={"draft": True})
        assert opened.status_code == 200, opened.text
        assert opened.json()["created"] is True
        pull = github.pulls[-1]
        assert opened.json() == {"url": pull.url, "number": pull.number, "created": True}
        assert pull.body["head"] == f"dancodes/{sid}"
        assert pull.body["base"] == "main"
        assert pull.body["draft"] is True
        assert pull.body["title"]  # the chat's title, or a plain one
        assert "- add the feature" in pull.body["body"]
        assert "feature.txt | +1 -0" in pull.body["body"]
        assert any(s.authorized and s.path.endswith("/pulls") and s.method == "POST" for s in github.seen)

        again = client.post(f"{base}/pr", json={"title": "another"})
        assert again.json() == {"url": pull.url, "number": pull.number, "created": False}
        assert len(github.pulls) == pull.number  # no second PR for the branch

        # nothing to compare: GitHub's 422, its words, one line, nothing opened
        empty_wt = run_as_agent(stack, client, "echo nothing to do", repo="acme/pulls")[1]
        empty_sid = empty_wt.name.rsplit("__", 1)[1]
        before = len(github.pulls)
        refused = client.post(f"/admin/worktrees/acme/pulls/{empty_sid}/pr", json={})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert "No commits between main and" in error
        assert "\n" not in error
        assert len(github.pulls) == before


def test_a_revoked_token_is_one_line_and_changes_nothing(github_stack: tuple[Stack, GitHubStandIn]) -> None:
    stack, github = github_stack
    remote = stack.remote("acme", "revoked")
    command = "echo x > x.txt && git add x.txt && git commit -q -m 'x'; echo ok"
    with stack.signed_in() as client:
        wt = run_as_agent(stack, client, command, repo="acme/revoked")[1]
        sid = wt.name.rsplit("__", 1)[1]
        real, github.token = github.token, "revoked-" + github.token  # the server takes another one now
        try:
            before = len(github.pulls)
            refused = client.post(f"/admin/worktrees/acme/revoked/{sid}/pr", json={})
        finally:
            github.token = real
    assert refused.status_code == 502, refused.text
    error = refused.json()["error"]
    assert "rejected the GitHub token" in error
    assert TOKEN not in refused.text
    assert "\n" not in error
    assert len(github.pulls) == before
    assert f"dancodes/{sid}" not in git(remote.bare, "branch", "--list", f"dancodes/{sid}")


@pytest.mark.parametrize(
    ("status", "body", "answer", "words"),
    [
        (403, {"message": "Resource not accessible by personal access token"}, 403, "not accessible"),
        (404, {"message": "Not Found"}, 404, "Not Found"),
        (
            422,
            {"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]},
            422,
            "Validation Failed: A pull request already exists",
        ),
        (401, {"message": "Bad credentials"}, 502, "refused the token (401)"),
        (500, "<html>oops</html>", 502, "HTTP 500"),
    ],
)
def test_githubs_refusals_keep_its_words_and_say_whose_fault_it_is(
    status: int, body: object, answer: int, words: str
) -> None:
    import httpx

    from supervisor.github import _github_refusal

    content = body if isinstance(body, str) else None
    response = httpx.Response(status, json=None if content else body, content=content)
    error = _github_refusal("opening the pull request", response)
    assert error.status == answer
    assert words in str(error)
    assert "\n" not in str(error)
