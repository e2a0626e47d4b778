"""The login wall through the real Caddy and the real opencode: who gets in, and who does not."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from supervisor.auth.cookie import CookieSigner
from supervisor.auth.rotation import ROTATION_FILE, fingerprint
from tests.conftest import TEST_PASSWORD, DaemonProc, daemon_env, reachable_by_agent
from tests.sse import EventStream
from tests.stack import Stack, running_stack

COOKIE = "dancodes_auth"
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": "text/html,*/*"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("wall")) as stack:
        yield stack


def test_without_the_cookie_a_browser_is_sent_to_login_and_an_api_call_gets_401(stack: Stack) -> None:
    with stack.anonymous() as client:
        page = client.get("/session/ses_x?tab=2", headers=NAVIGATE)
        assert page.status_code == 302
        location = urlsplit(page.headers["location"])
        assert location.path == "/auth/login"
        assert parse_qs(location.query)["next"] == ["/session/ses_x?tab=2"]

        api = client.get("/session")
        assert api.status_code == 401
        assert "error" in api.json()
        assert client.get("/event").status_code == 401
        assert client.get("/").status_code in (302, 401)  # the web app is behind the wall too

        health = client.get("/admin/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"

        login_page = client.get("/auth/login?next=/session", headers=NAVIGATE)
        assert login_page.status_code == 200
        assert 'type="password"' in login_page.text
        assert "maximum-scale=1" in login_page.text  # no zoom when the field gets focus


def test_login_sets_a_cookie_with_the_right_flags_and_opens_opencode(stack: Stack) -> None:
    with stack.anonymous() as client:
        wrong = client.post("/auth/login", data={"password": "nope", "next": "/"})
        assert wrong.status_code == 401
        response = client.post("/auth/login", data={"password": TEST_PASSWORD, "next": "/session"})
        assert response.status_code == 303
        assert response.headers["location"] == "/session"
        set_cookie = response.headers["set-cookie"]
        flags = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
        assert set_cookie.startswith(f"{COOKIE}=")
        assert {"httponly", "samesite", "path", "max-age"} <= flags
        assert "samesite=lax" in set_cookie.lower()
        assert "max-age=2592000" in set_cookie.lower()  # 30 days
        assert "secure" not in flags  # the origin here is plain http; https origins get Secure

        sessions = client.get("/session")
        assert sessions.status_code == 200
        assert isinstance(sessions.json(), list)
        assert client.get("/admin/repos").status_code == 200

        assert client.post("/auth/logout").status_code in (302, 303)
        assert client.get("/session").status_code == 401


def test_the_root_goes_to_our_app_and_opencodes_own_ui_files_to_opencode(stack: Stack) -> None:
    with stack.signed_in() as client:
        root = client.get("/", headers=NAVIGATE)
        if root.status_code == 404:  # no web build in this checkout: our app says so
            assert "web app is not built" in root.json()["error"]
        else:
            assert root.status_code == 200
            assert "opencode" not in root.text.lower()
        # a path our build does not have reaches opencode, whose web UI answers unknown paths itself
        other = client.get("/some/page/of/its/ui", headers=NAVIGATE)
        assert other.status_code == 200
        assert "<html" in other.text.lower()


def test_event_stream_flows_through_caddy_unbuffered(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = stack.login()
    directory = tmp_path_factory.mktemp("plain-dir")
    reachable_by_agent(directory)  # opencode runs as the agent's user
    stream = EventStream(f"{stack.url}/event", directory, cookies=client.cookies).start()
    try:
        connected_at = stream.arrived[0]
        before = time.monotonic()
        created = client.post("/session", headers={"x-opencode-directory": str(directory)}, json={})
        assert created.status_code == 200
        sid = created.json()["id"]
        event = stream.wait_for(
            lambda e: e["type"] == "session.created" and e["properties"]["info"]["id"] == sid, 15
        )
        # it arrived while the stream stayed open, soon after the POST, not when the stream ended
        index = stream.events.index(event)
        assert stream.arrived[index] >= before >= connected_at
        assert stream.arrived[index] - before < 5
    finally:
        stream.close()
        client.close()


def test_tampered_and_forged_cookies_are_refused(stack: Stack) -> None:
    good = stack.login()
    value = good.cookies[COOKIE]
    good.close()
    flipped = value[:-1] + ("A" if value[-1] != "A" else "B")
    for bad in [flipped, value + "x", "x" + value, value.split(".")[0], "", "not-a-cookie"]:
        with httpx.Client(base_url=stack.url, cookies={COOKIE: bad}, timeout=10) as client:
            assert client.get("/session").status_code == 401, bad


def test_a_cross_site_request_with_the_cookie_is_refused(stack: Stack) -> None:
    with stack.signed_in() as client:
        cookies = {COOKIE: client.cookies[COOKIE]}
    with httpx.Client(base_url=stack.url, cookies=cookies, timeout=10) as bare:
        for headers in [
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "same-site"},
            {},  # a state-changing request that names no origin at all
        ]:
            response = bare.post("/session", json={}, headers=headers)
            assert response.status_code == 403, (headers, response.text)
            assert "cross-site" in response.json()["error"]
            assert bare.post("/admin/gc", json={"dry_run": True}, headers=headers).status_code == 403
        # the same requests from the page itself pass
        ok = bare.post("/session", json={}, headers={"Sec-Fetch-Site": "same-origin"})
        assert ok.status_code == 200
        assert bare.post("/session", json={}, headers={"Origin": stack.url}).status_code == 200
        # reading needs no origin
        assert bare.get("/session").status_code == 200
        # login itself is checked too: no logging a victim into our account from another site
        forged_login = bare.post(
            "/auth/login", data={"password": TEST_PASSWORD}, headers={"Origin": "https://evil.example"}
        )
        assert forged_login.status_code == 403


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=1",
        "http:/evil.example",
    ],
)
def test_next_accepts_only_local_paths(stack: Stack, target: str) -> None:
    with stack.anonymous() as client:
        response = client.post("/auth/login", data={"password": TEST_PASSWORD, "next": target})
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith("/")
        assert not location.startswith("//")
        assert "\\" not in location
        assert "evil" not in location
        assert "\r" not in location
        assert "\n" not in location


def test_repeated_wrong_passwords_are_throttled(stack: Stack) -> None:
    """Last in the module: it locks the test client (127.0.0.1 to Caddy) out for a while."""
    with stack.anonymous() as client:
        statuses = []
        for _ in range(8):
            # a client cannot pick its own throttle bucket: Caddy replaces X-Forwarded-For
            response = client.post(
                "/auth/login",
                data={"password": "hunter2-wrong-guess"},
                headers={"X-Forwarded-For": "10.9.8.7"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert statuses[0] == 401
        assert statuses[-1] == 429, statuses
        assert int(response.headers["retry-after"]) >= 1
        # while locked out even the right password is not tried
        locked = client.post("/auth/login", data={"password": TEST_PASSWORD})
        assert locked.status_code == 429
    events = [e for e in stack.daemon.events() if e.get("event") in ("login_failed", "login_locked_out")]
    assert events
    assert all(e.get("client") == "127.0.0.1" for e in events)
    assert "hunter2-wrong-guess" not in stack.daemon.log()
    assert TEST_PASSWORD not in stack.daemon.log()


NO_OPENCODE = """
[services.opencode]
enabled = false
"""
OLD_SECRET = "the-old-secret-0123456789abcdefghijklmnop"
NEW_SECRET = "the-new-secret-0123456789abcdefghijklmnop"
DAY = 86400.0


def cookie_signed(secret: str, at: float) -> str:
    return CookieSigner(secret, max_age=30 * DAY, clock=lambda: at).issue()


@pytest.mark.parametrize(("rotated_days_ago", "old_cookie_works"), [(1, True), (8, False)])
def test_expired_and_rotated_cookies_through_caddy(
    start_daemon: Callable[..., DaemonProc], tmp_path: Path, rotated_days_ago: int, old_cookie_works: bool
) -> None:
    """AUTH_SECRET_PREVIOUS still signs in for rotation_window_days (7) after the rotation, then not."""
    now = time.time()
    data = tmp_path / "daemon0" / "data"  # where start_daemon puts the first daemon's data_dir
    data.mkdir(parents=True)
    since = now - rotated_days_ago * DAY
    (data / ROTATION_FILE).write_text(
        json.dumps({"fingerprint": fingerprint(OLD_SECRET, NEW_SECRET), "since": since})
    )
    env = dict(daemon_env(tmp_path), AUTH_SECRET=NEW_SECRET, AUTH_SECRET_PREVIOUS=OLD_SECRET)
    daemon = start_daemon(NO_OPENCODE, wait_healthy=False, env=env)
    public = f"http://127.0.0.1:{daemon.ports['public']}"
    daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")

    def status(cookie: str) -> int:
        with httpx.Client(base_url=public, cookies={COOKIE: cookie}, timeout=10) as client:
            return client.get("/admin/repos").status_code

    assert status(cookie_signed(NEW_SECRET, now)) == 200
    assert status(cookie_signed(NEW_SECRET, now - 29 * DAY)) == 200
    assert status(cookie_signed(NEW_SECRET, now - 31 * DAY)) == 401  # expired: 30 days
    assert status(cookie_signed(OLD_SECRET, now)) == (200 if old_cookie_works else 401)
    assert status(cookie_signed("some-other-secret-0123456789abcdefghijkl", now)) == 401
