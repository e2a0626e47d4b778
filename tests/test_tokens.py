"""Access tokens: `dancodes-ctl token ...` against the real daemon, and the real `opencode run
--attach` through Caddy and the wall with one; the pure parts (`supervisor.auth.tokens`) directly."""

from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from supervisor.auth.keys import AuthSecrets
from supervisor.auth.tokens import TOKENS_FILE, TokenStore, basic_password, token_hash
from supervisor.auth.wall import AuthWall
from supervisor.config import AuthSettings
from supervisor.errors import Conflict, DataDirError, InvalidName, NotFound
from tests.stack import Stack, running_stack

OPENCODE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "opencode"


def basic(password: str, user: str = "opencode") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- the pure parts ------------------------------------------------------------------------------


def test_basic_password_takes_user_opencode_only() -> None:
    assert basic_password(basic("s3cret:with:colons")) == "s3cret:with:colons"
    assert basic_password("basic " + basic("x")[6:]) == "x"  # the scheme is case-insensitive
    assert basic_password(basic("x", user="admin")) is None
    assert basic_password(basic("")) is None
    assert basic_password("Bearer abc") is None
    assert basic_password("Basic not*base64") is None
    assert basic_password("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert basic_password("Basic " + base64.b64encode(b"opencode:\xff").decode()) is None  # not UTF-8
    assert basic_password(basic("x" * 257)) is None
    assert basic_password(None) is None
    assert basic_password("") is None


def test_a_store_keeps_hashes_only_and_revoking_refuses_at_once(tmp_path: Path) -> None:
    now = [1000.0]
    store = TokenStore(tmp_path, clock=lambda: now[0])
    token = store.create("laptop")
    assert len(token) >= 43
    text = (tmp_path / TOKENS_FILE).read_text()
    assert token not in text
    assert token_hash(token) in text
    assert (tmp_path / TOKENS_FILE).stat().st_mode & 0o777 == 0o600
    assert store.match(token) == "laptop"
    assert store.match(token + "x") is None
    assert store.match("") is None
    [info] = store.listing()
    assert (info.name, info.created, info.last_used) == ("laptop", 1000.0, 1000.0)

    with pytest.raises(Conflict, match="a token named 'laptop' exists"):
        store.create("laptop")
    for bad in ("", "-x", "a/b", "x" * 65, "sp ace", "ünï"):
        with pytest.raises(InvalidName, match="bad token name"):
            store.create(bad)

    again = TokenStore(tmp_path, clock=lambda: now[0])  # what a restart reads
    assert again.match(token) == "laptop"
    store.revoke("laptop")
    assert store.match(token) is None
    with pytest.raises(NotFound, match="no token named 'laptop'"):
        store.revoke("laptop")
    assert TokenStore(tmp_path, clock=lambda: now[0]).match(token) is None


def test_a_token_the_file_cannot_hold_is_not_handed_out(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "gone", clock=lambda: 0.0)
    with pytest.raises(DataDirError, match="cannot write"):
        store.create("laptop")
    assert store.listing() == []


def test_last_used_is_written_after_flush_every(tmp_path: Path) -> None:
    now = [0.0]
    store = TokenStore(tmp_path, clock=lambda: now[0], flush_every=300.0)
    token = store.create("laptop")
    now[0] = 10.0
    store.match(token)
    assert TokenStore(tmp_path, clock=lambda: 0.0).listing()[0].last_used is None
    now[0] = 400.0
    store.match(token)
    assert TokenStore(tmp_path, clock=lambda: 0.0).listing()[0].last_used == 400.0


def wall_for(tmp_path: Path) -> AuthWall:
    """A wall whose throttle clock stands still: a lockout lasts as long as the test."""
    secrets = AuthSecrets.from_env({"AUTH_SECRET": "k" * 64, "AUTH_PASSWORD": "the-owner-password-is-long"})
    settings = AuthSettings(free_attempts=2)
    origin = "https://dc.example"
    return AuthWall(settings, secrets, data_dir=tmp_path, origin=origin, monotonic=lambda: 100.0)


def test_the_wall_lets_a_token_through_and_throttles_wrong_ones(tmp_path: Path) -> None:
    wall = wall_for(tmp_path)
    token = wall.tokens.create("laptop")
    headers = {"x-forwarded-method": "POST", "x-forwarded-for": "203.0.113.9"}
    assert wall.check({**headers, "authorization": basic(token)}).status == 204
    assert wall.check({**headers, "authorization": basic(token, user="root")}).status == 401
    statuses = [wall.check({**headers, "authorization": basic("wrong")}).status for _ in range(4)]
    assert statuses == [401, 401, 401, 429]  # two free, one that starts the lockout, then locked out
    locked = wall.check({**headers, "authorization": basic(token)})
    assert locked.status == 429
    assert int(dict(locked.headers)["retry-after"]) >= 1
    assert wall.throttle.retry_after("203.0.113.9") == 1.0  # the login's throttle, the client's bucket
    other = {**headers, "x-forwarded-for": "198.51.100.7", "authorization": basic(token)}
    assert wall.check(other).status == 204  # another client's bucket
    assert token.encode() not in wall.check({**headers, "authorization": basic(token + "x")}).body


def test_a_browser_sending_a_token_cross_site_is_refused(tmp_path: Path) -> None:
    wall = wall_for(tmp_path)
    auth = basic(wall.tokens.create("laptop"))
    base = {"x-forwarded-method": "POST", "x-forwarded-for": "203.0.113.9", "authorization": auth}
    assert wall.check({**base, "origin": "https://evil.example"}).status == 403
    assert wall.check({**base, "sec-fetch-site": "cross-site"}).status == 403
    assert wall.check({**base, "origin": "https://dc.example"}).status == 204


# -- the real stack --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # a lockout outlasts the test that checks it by far
    with running_stack(tmp_path_factory.mktemp("tokens"), "[auth]\nlockout_initial = 30.0\n") as stack:
        yield stack


def ctl_json(stack: Stack, *args: str) -> dict[str, object]:
    done = stack.daemon.ctl("--json", *args)
    assert done.returncode == 0, done.stderr
    body: dict[str, object] = json.loads(done.stdout)
    return body


def opencode_client(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The laptop's opencode CLI: a home of its own, no server password in its environment."""
    home = root / "laptop"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCODE", "XDG_")) and k != "HOME"}
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local"),
    }
    env |= {"XDG_CACHE_HOME": str(home / ".cache"), "XDG_STATE_HOME": str(home / ".state")}
    return subprocess.run(
        [str(OPENCODE), *args], capture_output=True, text=True, timeout=120, env=env, cwd=home
    )


def every_file(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def test_opencode_run_attach_with_a_token_drives_the_phones_session_until_revoked(stack: Stack) -> None:
    stack.remote("acme", "rocket")
    with stack.signed_in() as phone:
        cloned = phone.post("/admin/repos/clone", json={"repo": "acme/rocket", "wait": True})
        assert cloned.status_code == 201, cloned.text
        repo_path = cloned.json()["repo"]["path"]
        session = phone.post("/session", headers={"x-opencode-directory": repo_path}, json={})
        session_id = session.json()["id"]
        made = phone.post("/admin/worktrees", json={"repo": "acme/rocket", "session_id": session_id})
        assert made.status_code == 201, made.text
        worktree = made.json()["worktree"]["path"]

        created = ctl_json(stack, "token", "create", "laptop")
        assert set(created) == {"name", "token"}
        assert created["name"] == "laptop"
        token = str(created["token"])

        stack.llm.reply_text("Hello from the scripted model.")
        ran = opencode_client(
            stack.root, "run", "--attach", stack.url, "-p", token, "--dir", worktree, "-s", session_id, "hi"
        )
        assert ran.returncode == 0, ran.stderr[:3000]
        assert "Hello from the scripted model." in ran.stdout
        assert stack.llm.chat_requests()[-1].last_user_text == "hi"
        # the phone sees the laptop's turn in the same chat
        messages = phone.get(f"/session/{session_id}/message", headers={"x-opencode-directory": worktree})
        assert "Hello from the scripted model." in messages.text

        listed = ctl_json(stack, "token", "list")["tokens"]
        assert isinstance(listed, list)
        assert [t["name"] for t in listed] == ["laptop"]
        assert listed[0]["last_used"] is not None
        assert "token" not in listed[0]
        table = stack.daemon.ctl("token", "list")
        assert table.returncode == 0
        assert "laptop" in table.stdout
        assert token not in table.stdout

        # the token never reaches a file under data_dir in clear, nor the daemon's log
        for path in every_file(stack.daemon.data_dir):
            assert token.encode() not in path.read_bytes(), path
        assert token not in stack.daemon.log()
        tokens_file = stack.daemon.data_dir / TOKENS_FILE
        assert tokens_file.stat().st_mode & 0o777 == 0o600
        agent = pwd.getpwnam("dancodes-agent")
        as_agent = subprocess.run(
            [
                "setpriv",
                f"--reuid={agent.pw_uid}",
                f"--regid={agent.pw_gid}",
                "--clear-groups",
                "cat",
                str(tokens_file),
            ],
            capture_output=True,
            text=True,
        )
        assert as_agent.returncode != 0
        assert "Permission denied" in as_agent.stderr

        # revoked: the very next request is refused
        with httpx.Client(base_url=stack.url, timeout=30) as laptop:
            assert laptop.get("/session", headers={"Authorization": basic(token)}).status_code == 200
            revoked = stack.daemon.ctl("token", "revoke", "laptop")
            assert revoked.returncode == 0, revoked.stderr
            refused = laptop.get("/session", headers={"Authorization": basic(token)})
            assert refused.status_code == 401, refused.text
            assert refused.json() == {"error": "wrong or revoked token"}
        asked = len(stack.llm.chat_requests())
        again = opencode_client(
            stack.root, "run", "--attach", stack.url, "-p", token, "--dir", worktree, "-s", session_id, "hi"
        )
        assert again.returncode != 0, again.stdout
        assert len(stack.llm.chat_requests()) == asked  # nothing reached the model
        assert ctl_json(stack, "token", "list")["tokens"] == []


def test_ctl_errors_are_one_line(stack: Stack) -> None:
    ctl_json(stack, "token", "create", "twice")
    for args, message in (
        (("token", "create", "twice"), "a token named 'twice' exists"),
        (("token", "create", "no/slash"), "bad token name"),
        (("token", "revoke", "nobody"), "no token named 'nobody'"),
    ):
        done = stack.daemon.ctl(*args)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines() == [f"dancodes-ctl: {done.stderr.strip()[14:]}"]
        assert message in done.stderr
        assert "Traceback" not in done.stderr
    created = stack.daemon.ctl("token", "create", "plain")
    assert created.returncode == 0
    assert len(created.stdout.strip()) >= 43
    assert created.stdout.strip() not in created.stderr


def test_a_token_does_not_open_admin_and_the_owner_manages_tokens_with_the_cookie(stack: Stack) -> None:
    token = str(ctl_json(stack, "token", "create", "not-admin")["token"])
    with httpx.Client(base_url=stack.url, timeout=30) as laptop:
        assert laptop.get("/admin/tokens", headers={"Authorization": basic(token)}).status_code == 401
    with stack.signed_in() as phone:
        made = phone.post("/admin/tokens", json={"name": "from-phone"})
        assert made.status_code == 201
        assert set(made.json()) == {"name", "token"}
        assert "from-phone" in [t["name"] for t in phone.get("/admin/tokens").json()["tokens"]]
        assert phone.delete("/admin/tokens/from-phone").json() == {"name": "from-phone"}
        assert phone.delete("/admin/tokens/from-phone").status_code == 404
        assert phone.post("/admin/tokens", json={"name": "x", "extra": 1}).status_code == 400
    with stack.anonymous() as stranger:
        assert stranger.post("/admin/tokens", json={"name": "sneaky"}).status_code == 401


def test_wrong_tokens_are_throttled_like_the_login(stack: Stack) -> None:
    """Last in this file: it locks 127.0.0.1 out for the rest of the module."""
    token = str(ctl_json(stack, "token", "create", "good")["token"])
    with httpx.Client(base_url=stack.url, timeout=30) as laptop:
        statuses = []
        for _ in range(10):
            response = laptop.get("/session", headers={"Authorization": basic("not-the-token")})
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        # the free attempts, the one that starts the lockout, then 429 before the token is looked at
        assert statuses == [401, 401, 401, 401, 429], statuses
        assert int(response.headers["retry-after"]) > 1
        # locked out: even the right token waits, and so does the login (one throttle, one bucket)
        assert laptop.get("/session", headers={"Authorization": basic(token)}).status_code == 429
    with stack.anonymous() as browser:
        assert browser.post("/auth/login", data={"password": "wrong"}).status_code == 429
    assert "not-the-token" not in stack.daemon.log()
