"""The agent's boundary, attacked by the agent itself: a scripted tool call runs the attacks as opencode's
bash tool would for a prompt-injected model, through the real daemon, opencode and Caddy.

Unit tests cover the pure parts: the environment allowlist and opencode's composed config.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
import structlog.testing

from supervisor import agent, opencode_config
from supervisor.errors import DataDirError, SpawnError
from tests.conftest import (
    ONLY_TEST_SERVICES,
    TEST_PASSWORD,
    TEST_SECRET,
    DaemonProc,
    daemon_env,
    reachable_by_agent,
)
from tests.gitutil import git
from tests.stack import Stack, running_stack

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the uid boundary needs a root daemon")

FAKE_TOKEN = "ghp_agentmustneverseethis0123456789abcdef"


# -- the environment allowlist (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["PATH", "LANG", "LC_ALL", "TZ", "HTTPS_PROXY", "no_proxy", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS",
     "OPENROUTER_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "AWS_SECRET_ACCESS_KEY"],
)  # fmt: skip
def test_allowlist_passes_what_tools_and_providers_need(name: str) -> None:
    assert agent.allowed(name)


@pytest.mark.parametrize(
    "name",
    ["AUTH_PASSWORD", "AUTH_SECRET", "AUTH_SECRET_PREVIOUS", "GITHUB_TOKEN", "GH_TOKEN",
     "OPENCODE_SERVER_PASSWORD", "DANCODES_SOCKET", "HOME", "PYTHONPATH", "LD_PRELOAD", "SOME_SECRET"],
)  # fmt: skip
def test_allowlist_refuses_the_rest(name: str) -> None:
    assert not agent.allowed(name)


def test_config_names_add_to_the_allowlist_but_never_auth() -> None:
    extra = ("MY_TOOL_HOME", "CORP_*", "AUTH_*", "GITHUB_TOKEN")
    assert agent.allowed("MY_TOOL_HOME", extra)
    assert agent.allowed("CORP_REGISTRY", extra)
    assert not agent.allowed("MY_TOOL_HOMES", extra)
    assert not agent.allowed("AUTH_PASSWORD", extra)
    assert not agent.allowed("GITHUB_TOKEN", extra)


def test_agent_environment_gives_the_agent_its_own_identity() -> None:
    environ = {"PATH": "/usr/bin", "HOME": "/root", "USER": "root", "AUTH_SECRET": "x" * 40, "LANG": "C"}
    user = agent.AgentUser(name="dancodes-agent", uid=990, gid=990)
    env = agent.agent_environment(environ, user=user, home=Path("/vol/home"))
    assert env["HOME"] == "/vol/home"
    assert env["USER"] == env["LOGNAME"] == "dancodes-agent"
    assert "AUTH_SECRET" not in env
    assert env["LANG"] == "C"
    # under the daemon's own uid a developer keeps their home
    same = agent.agent_environment(environ, user=None, home=Path("/vol/home"))
    assert same["HOME"] == "/root"
    assert "AUTH_SECRET" not in same


# -- opencode's composed config (pure) ---------------------------------------------------------------


def test_jsonc_comments_and_trailing_commas_go_strings_stay() -> None:
    text = """{
      // a comment
      "url": "http://example.com/*not a comment*/", /* block */
      "list": [1, 2,],
      "s": "a \\" // quoted",
    }"""
    assert json.loads(opencode_config.strip_jsonc(text)) == {
        "url": "http://example.com/*not a comment*/",
        "list": [1, 2],
        "s": 'a " // quoted',
    }


def conf_dir_with_defaults(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "opencode.json").write_text('{"share": "disabled", "autoupdate": false, "plugin": ["ours"]}')
    return conf


def test_user_layers_merge_and_ours_win_only_where_forced(tmp_path: Path) -> None:
    conf = conf_dir_with_defaults(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "opencode.json").write_text('{"model": "volume/m", "provider": {"a": {"name": "A"}}, }')
    user_file = tmp_path / "user.jsonc"
    user_file.write_text(
        '// mine\n{"share": "auto", "autoupdate": true, "model": "user/m", "plugin": ["theirs"],'
        ' "provider": {"b": {"name": "B"}}}'
    )
    environ = {"OPENCODE_CONFIG": str(user_file), "OPENCODE_CONFIG_CONTENT": '{"small_model": "inline/s"}'}
    merged = json.loads(
        opencode_config.compose(conf_dir=conf, data_dir=data, plugins_dir=data / "plugins", environ=environ)
    )
    assert merged["share"] == "disabled"
    assert merged["autoupdate"] is False
    assert merged["model"] == "user/m"  # the user's file over the volume's
    assert merged["small_model"] == "inline/s"
    assert set(merged["provider"]) == {"a", "b"}
    assert merged["plugin"][:2] == ["ours", "theirs"]
    # the daemon's copy in the data dir, which the agent can read wherever the install lives
    assert merged["plugin"][-1] == (data / "plugins" / opencode_config.SCRUB_PLUGIN).as_uri()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.write_text('{"model": '), "is not valid JSON"),
        (lambda p: p.write_text("[1, 2]"), "must be a JSON object"),
        (lambda p: None, "cannot be read"),
    ],
)
def test_a_bad_user_file_is_one_line_naming_it(
    tmp_path: Path, setup: Callable[[Path], None], message: str
) -> None:
    user_file = tmp_path / "broken.json"
    setup(user_file)
    with pytest.raises(SpawnError) as caught:
        opencode_config.compose(
            conf_dir=conf_dir_with_defaults(tmp_path),
            data_dir=tmp_path,
            plugins_dir=tmp_path,
            environ={"OPENCODE_CONFIG": str(user_file)},
        )
    assert message in str(caught.value)
    assert str(user_file) in str(caught.value)
    assert "\n" not in str(caught.value)


# -- the agent attacks, for real ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"GITHUB_TOKEN": FAKE_TOKEN}
    # git.agent_token = false: the token is the daemon's alone (with it on, the agent's git gets it
    # on purpose, through its environment: tests/test_agent_git.py)
    extra = "agent_token = false\n"  # continues the [git] table
    with running_stack(tmp_path_factory.mktemp("agent"), extra, env=env, production_ports=False) as stack:
        yield stack


def run_as_agent(
    stack: Stack, client: httpx.Client, command: str, *, repo: str = "acme/boxed"
) -> tuple[str, Path]:
    """A chat in a fresh worktree whose model runs `command` with opencode's bash tool; its output."""
    owner, name = repo.split("/")
    repos = client.get("/admin/repos").json()["repos"]
    if not any(r["repo"] == repo for r in repos):
        if not (stack.remotes / owner / f"{name}.git").exists():
            stack.remote(owner, name)
        cloned = client.post("/admin/repos/clone", json={"repo": repo, "wait": True})
        assert cloned.status_code == 201, cloned.text
    repo_path = stack.daemon.data_dir / "projects" / "repos" / f"{owner}__{name}"
    session = client.post("/session", headers={"x-opencode-directory": str(repo_path)}, json={})
    sid = session.json()["id"]
    made = client.post("/admin/worktrees", json={"repo": repo, "session_id": sid})
    assert made.status_code == 201, made.text
    wt = Path(made.json()["worktree"]["path"])
    stack.llm.reply_tool_call("bash", {"command": command, "description": "look around"})
    stack.llm.reply_text("done")
    reply = client.post(
        f"/session/{sid}/message",
        headers={"x-opencode-directory": str(wt)},
        json={"parts": [{"type": "text", "text": "ignore previous instructions"}]},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    messages = client.get(f"/session/{sid}/message", headers={"x-opencode-directory": str(wt)}).json()
    outputs = [
        part["state"].get("output", "")
        for message in messages
        for part in message["parts"]
        if part["type"] == "tool"
    ]
    assert outputs, messages
    return "\n".join(outputs), wt


def section(output: str, name: str) -> str:
    match = re.search(rf"=== {name} ===\n(.*?)(?:\n=== |\Z)", output, re.S)
    assert match, f"no section {name} in:\n{output[:3000]}"
    return match.group(1)


@needs_root
def test_the_agent_reaches_no_secret_and_no_socket_of_the_daemon(stack: Stack) -> None:
    daemon = stack.daemon
    run_dir = daemon.data_dir / "run"
    secrets_dir = daemon.data_dir / "secrets"
    opencode_password = (secrets_dir / "opencode-server-password").read_text().strip()
    sockets = {
        "control": run_dir / "dancodes.sock",
        "auth": run_dir / "auth.sock",
        "caddy": run_dir / "caddy-admin.sock",
    }
    for path in sockets.values():
        assert path.exists(), path
    attacks = [
        "echo '=== id ==='; id -u",
        "echo '=== env ==='; env",
        "echo '=== proc ==='; for f in /proc/[0-9]*/environ; "
        "do tr '\\0' '\\n' 2>/dev/null < \"$f\"; done; true",  # 2> first: it also hides the < failing
        # the wall's sockets, and Caddy's admin API (a PATCH there once removed the wall)
        *(
            f"echo '=== {name} ==='; curl -sS -m 5 --unix-socket {shlex.quote(str(path))} "
            f"-X PATCH -H 'Content-Type: application/json' -d '{{}}' http://x/config/ 2>&1; echo \" rc=$?\"; "
            f"/usr/bin/python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "
            f"{shlex.quote(str(path))} 2>&1 | tail -1"
            for name, path in sockets.items()
        ),
        f"echo '=== secrets ==='; cat {shlex.quote(str(secrets_dir / 'opencode-server-password'))} 2>&1; "
        f"ls {shlex.quote(str(run_dir))} 2>&1; true",
        # opencode and the app on loopback, without the wall
        f"echo '=== loopback ==='; curl -s -m 5 -o /dev/null -w '%{{http_code}} ' "
        f"http://127.0.0.1:{daemon.ports['opencode']}/session; "
        f"curl -s -m 5 -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{daemon.ports['app']}/admin/services",
    ]
    with stack.signed_in() as client:
        output, _ = run_as_agent(stack, client, "\n".join(attacks))

    agent_uid = pwd.getpwnam("dancodes-agent").pw_uid
    assert section(output, "id").strip() == str(agent_uid) != "0"
    env = section(output, "env")
    assert "PATH=" in env  # the section is real output
    for secret in (TEST_PASSWORD, TEST_SECRET, FAKE_TOKEN, opencode_password):
        assert secret not in env
    assert "AUTH_" not in env
    assert "GITHUB_TOKEN" not in env
    # every environ the agent could read: its own processes', never the daemon's or Caddy's
    proc = section(output, "proc")
    assert "XDG_DATA_HOME=" in proc  # opencode's own environ: readable, same user
    for secret in (TEST_PASSWORD, TEST_SECRET, FAKE_TOKEN):
        assert secret not in output
    for name in sockets:
        answer = section(output, name)
        assert "rc=7" in answer, answer  # curl could not connect
        assert "PermissionError" in answer, answer
    secrets = section(output, "secrets")
    assert opencode_password not in secrets
    assert secrets.count("Permission denied") == 2, secrets
    assert section(output, "loopback").splitlines()[0].split() == ["401", "401"]


@needs_root
def test_the_agent_owns_its_work_and_the_daemon_still_handles_it(stack: Stack) -> None:
    """The agent commits as itself; the daemon reads, backs up and deletes that worktree as the agent."""
    command = (
        "echo agent-work > work.txt && git add work.txt && "
        "git -c user.name=Agent -c user.email=agent@example.invalid commit -q -m 'agent work' "
        "&& echo committed"
    )
    with stack.signed_in() as client:
        output, wt = run_as_agent(stack, client, command)
        assert "committed" in output, output
        agent_uid = pwd.getpwnam("dancodes-agent").pw_uid
        assert (wt / "work.txt").stat().st_uid == agent_uid
        db = stack.daemon.data_dir / "opencode" / "data" / "opencode" / "opencode.db"
        assert db.stat().st_uid == agent_uid
        assert stat.S_IMODE((stack.daemon.data_dir / "run").stat().st_mode) == 0o700
        assert stat.S_IMODE((stack.daemon.data_dir / "secrets").stat().st_mode) == 0o700

        sid = wt.name.rsplit("__", 1)[1]
        info = client.get(f"/admin/worktrees/acme/boxed/{sid}").json()["worktree"]
        assert info["unpushed"] == 1, info
        refused = client.delete(f"/admin/worktrees/acme/boxed/{sid}")
        assert refused.status_code == 409, refused.text
        deleted = client.delete(f"/admin/worktrees/acme/boxed/{sid}", params={"force": "true"})
        assert deleted.status_code == 200, deleted.text
        backup = deleted.json()["deleted"]["backup_ref"]
        repo_path = stack.daemon.data_dir / "projects" / "repos" / "acme__boxed"
        assert git(repo_path, "show", f"{backup}:work.txt") == "agent-work"
        # what the daemon wrote into the clone is the agent's, so its next commit there works
        for ref_file in (repo_path / ".git" / "refs").rglob("*"):
            assert ref_file.stat().st_uid == agent_uid, ref_file


def test_a_user_provider_in_opencode_config_reaches_opencode(tmp_path: Path) -> None:
    """The user's OPENCODE_CONFIG file (readable by root alone) and <data_dir>/opencode.json merge
    with ours; a setting we must force (share) stays forced whatever they say."""
    data_dir = tmp_path / "stack" / "daemon" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "opencode.json").write_text('{"username": "from-the-volume"}')
    provider_file = tmp_path / "user-opencode.jsonc"
    with (
        running_stack(tmp_path / "stack", production_ports=False, provider_file=provider_file) as stack,
        stack.signed_in() as client,
    ):
        stack.remote("acme", "configured")
        cloned = client.post("/admin/repos/clone", json={"repo": "acme/configured", "wait": True})
        repo_path = cloned.json()["repo"]["path"]
        headers = {"x-opencode-directory": repo_path}
        seen = client.get("/config", headers=headers).json()
        assert seen["share"] == "disabled"
        assert seen["autoupdate"] is False
        assert seen["username"] == "from-the-volume"
        providers = client.get("/config/providers", headers=headers).json()["providers"]
        assert any(p["id"] == "scripted" for p in providers)
        session = client.post("/session", headers=headers, json={})
        stack.llm.reply_text("hello from the user's provider")
        reply = client.post(
            f"/session/{session.json()['id']}/message",
            headers=headers,
            json={"parts": [{"type": "text", "text": "hi"}]},
            timeout=60,
        )
        texts = [p.get("text", "") for p in reply.json()["parts"]]
        assert "hello from the user's provider" in texts, reply.text


# -- any agent service, opted out or not -----------------------------------------------------------

PROBE_SERVICE = """
[services.peek]
agent = true
argv = ["sh", "-c", "id -u > {data_dir}/home/peek-uid; env > {data_dir}/home/peek-env; exec sleep 600"]
"""


def peek(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path, extra: str
) -> tuple[str, dict[str, str], DaemonProc]:
    """Start a daemon whose one service is an agent that writes down its uid and environment."""
    env = {**daemon_env(tmp_path), "GITHUB_TOKEN": FAKE_TOKEN, "CORP_REGISTRY": "https://registry.example"}
    daemon = start_daemon(ONLY_TEST_SERVICES + PROBE_SERVICE + extra, env=env, wait_healthy=False)
    env_file = daemon.data_dir / "home" / "peek-env"
    daemon.wait_for(lambda: env_file.exists() and env_file.stat().st_size > 0, 20, "the peek service")
    seen = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return (daemon.data_dir / "home" / "peek-uid").read_text().strip(), seen, daemon


@needs_root
def test_opting_out_runs_the_agent_as_root_with_the_same_allowlist(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    uid, env, daemon = peek(start_daemon, tmp_path, '[agent]\nuser = "root"\nenv = ["CORP_*"]\n')
    assert uid == "0"
    assert env["CORP_REGISTRY"] == "https://registry.example"  # named in agent.env
    for name in ("AUTH_PASSWORD", "AUTH_SECRET", "GITHUB_TOKEN"):
        assert name not in env
    events = [e for e in daemon.events() if e.get("event") == "agent_boundary_off"]
    assert events
    assert "root" in events[0]["reason"]


@needs_root
def test_an_agent_service_runs_as_the_agent_user(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path
) -> None:
    uid, env, _ = peek(start_daemon, tmp_path, "")
    assert uid == str(pwd.getpwnam("dancodes-agent").pw_uid)
    assert env["USER"] == "dancodes-agent"
    assert env["HOME"].endswith("/data/home")
    assert "CORP_REGISTRY" not in env  # not named in agent.env
    for name in ("AUTH_PASSWORD", "AUTH_SECRET", "GITHUB_TOKEN"):
        assert name not in env


def test_a_daemon_that_is_not_root_warns_that_the_boundary_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with structlog.testing.capture_logs() as logged:
        assert agent.boundary_off("dancodes-agent")
    warnings = [e for e in logged if e["event"] == "agent_boundary_off"]
    assert len(warnings) == 1
    assert "not root" in warnings[0]["reason"]
    assert warnings[0]["log_level"] == "warning"


@needs_root
def test_a_data_dir_out_of_the_agents_reach_is_named(tmp_path: Path) -> None:
    user = agent.find_user("dancodes-agent") or agent.AgentUser("dancodes-agent", 999, 999)
    locked = tmp_path / "locked"
    (locked / "data").mkdir(parents=True)
    locked.chmod(0o700)
    os.chown(locked, 0, 0)
    with pytest.raises(DataDirError) as caught:
        agent.check_reachable(locked / "data", user)
    assert str(locked) in str(caught.value)
    assert "0700" in str(caught.value)
    locked.chmod(0o711)
    reachable_by_agent(locked / "data")
    agent.check_reachable(locked / "data", user)


# -- what the agent may write: the clone's config ----------------------------------------------------


def test_the_token_goes_to_the_remotes_host_alone() -> None:
    """A redirect, or `url.*.insteadOf` in a clone's config (the agent's to write), changes the URL
    libgit2 authenticates for; the token must not follow it."""
    from pygit2 import Passthrough, UserPass
    from pygit2.enums import CredentialType

    from supervisor.projects import _git

    callbacks = _git.Callbacks("https://github.com/acme/widget.git", FAKE_TOKEN)
    with pytest.raises(Passthrough):
        callbacks.credentials("https://evil.example/acme/widget.git", None, CredentialType.USERPASS_PLAINTEXT)
    with pytest.raises(Passthrough):
        callbacks.credentials("http://github.com/acme/widget.git", None, CredentialType.USERPASS_PLAINTEXT)
    given = callbacks.credentials(
        "https://github.com/acme/widget.git", None, CredentialType.USERPASS_PLAINTEXT
    )
    assert isinstance(given, UserPass)
    assert given.credential_tuple == ("x-access-token", FAKE_TOKEN)


def test_a_fetch_goes_to_the_remote_the_daemon_trusts(tmp_path: Path) -> None:
    """The agent points origin at a repo of its own, holding its unpushed commit: GC's fetch must not
    take that for the remote (it would count the commit as pushed and delete the work)."""
    from supervisor.projects.names import RepoName
    from supervisor.projects.progress import CloneProgress
    from supervisor.projects.store import ProjectStore
    from tests.gitutil import commit_file, make_remote, run_here

    repo = RepoName("acme", "widget")
    make_remote(tmp_path / "remotes", tmp_path / "dev", repo.owner, repo.name)
    projects = tmp_path / "data" / "projects"
    store = ProjectStore(
        projects / "repos",
        projects / "worktrees",
        f"file://{tmp_path}/remotes/{{owner}}/{{name}}.git",
        None,
        run_command=run_here,
    )
    store.clone(repo, CloneProgress())
    wt = store.create_worktree(repo, "ses_fake").path
    sha = commit_file(wt, "work.txt", "unpushed\n")
    decoy = tmp_path / "decoy.git"
    git(tmp_path, "init", "-q", "--bare", str(decoy))
    git(wt, "push", "-q", str(decoy), "HEAD:refs/heads/dancodes/ses_fake")
    clone = store.repo_path(repo)
    git(clone, "remote", "set-url", "origin", f"file://{decoy}")
    store.fetch(repo)
    assert git(clone, "remote", "get-url", "origin") == store.url(repo)
    assert sha not in git(clone, "branch", "-r", "--contains", sha, "--format=%(objectname)")
    assert store.worktree(repo, "ses_fake").unpushed == 1
