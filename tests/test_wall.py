"""The login wall through the real Caddy and the real opencode: who gets in, and who does not."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import pytest

from supervisor import tls
from supervisor.api.web import PUBLIC_FILES
from supervisor.auth.cookie import CookieSigner
from supervisor.auth.rotation import ROTATION_FILE, fingerprint
from supervisor.auth.sessions import SessionStore, new_session_id
from supervisor.layout import layout, resolve_executable, search_path
from tests import rawhttp
from tests.conftest import TEST_PASSWORD, DaemonProc, daemon_env, free_port, reachable_by_agent
from tests.rawhttp import H2_PREFACE, request_head, try_h2c
from tests.sse import EventStream
from tests.stack import Stack, running_stack

COOKIE = "dancodes_auth"
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": "text/html,*/*"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("wall")
    temp = root / "tmp"  # the daemon's temporary files: a spooled upload would show up here
    temp.mkdir()
    temp.chmod(0o1777)  # like /tmp: opencode, as the agent's user, keeps its own files here too
    # a lockout outlasts the next request by far: the tests after one do not race its end
    with running_stack(root, "[auth]\nlockout_initial = 30.0\n", env={"TMPDIR": str(temp)}) as stack:
        yield stack


def cookie_header(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={client.cookies[COOKIE]}"}


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


def test_the_installable_files_come_without_the_cookie_and_nothing_else_does(stack: Stack) -> None:
    """Browsers fetch the manifest, its icons and the service worker without credentials: exactly those
    paths are outside the wall; the page, its bundles and every API stay behind it."""
    dist = layout().web_root
    if not (dist / "sw.js").is_file():
        pytest.skip("web/dist is not built (scripts/build-web.sh)")
    kinds = {".js": "text/javascript", ".webmanifest": "application/manifest+json", ".png": "image/png"}
    with stack.anonymous() as client:
        assert not client.cookies
        for path in PUBLIC_FILES:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:200])
            assert response.content == (dist / path.removeprefix("/")).read_bytes()
            assert response.headers["content-type"].startswith(kinds[Path(path).suffix]), path
            assert "no-cache" in response.headers["cache-control"]  # a deploy is seen on the next check
            assert "set-cookie" not in response.headers
        ours = sorted(f"/_app/{p.name}" for p in (dist / "_app").iterdir())
        bundles = [path for path in ours if path not in PUBLIC_FILES]
        assert any(path.endswith(".js") for path in bundles)
        behind = [
            "/",
            "/index.html",
            *bundles,
            "/admin/repos",
            "/admin/chats",
            "/session",
            "/event",
            "/config",
        ]
        near_misses = [
            "/sw.js/",
            "/sw.js/x",
            "/sw.jsx",
            "/sw",
            "/_app/sw.js",
            "/_app/manifest.webmanifest/x",
            "/_app/manifest.webmanifestx",
            "/_app/icon-193.png",
            "/_app/icon-192.png.map",
            "/_app/",
            "/site.webmanifest",  # opencode's own manifest: its, behind the wall
            "/favicon.ico",
        ]
        for path in behind + near_misses:
            response = client.get(path)
            assert response.status_code == 401, (path, response.status_code, response.text[:200])
        page = client.get("/", headers=NAVIGATE)
        assert page.status_code == 302
        assert urlsplit(page.headers["location"]).path == "/auth/login"
        # the public paths answer reads only: no way to the app's other routes through them
        assert client.post("/sw.js", json={}).status_code == 405
        assert client.delete("/_app/manifest.webmanifest").status_code == 405


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


# -- nothing but HTTP/1.1 and WebSocket ---------------------------------------------------------------

ROUTE_FAMILIES = [
    ("/auth/login", False),  # the app, no cookie needed
    ("/admin/health", False),
    ("/admin/repos", True),  # the app behind forward_auth
    ("/", True),  # the web app
    ("/session", True),  # opencode's API
    ("/global/health", True),
]


@pytest.mark.parametrize(("path", "signed_in"), ROUTE_FAMILIES)
def test_an_h2c_upgrade_never_crosses_caddy(stack: Stack, path: str, signed_in: bool) -> None:
    """Measured before: 101, then HTTP/2 straight to hypercorn with headers the client chose."""
    headers = {"Accept": "application/json"}
    if signed_in:
        with stack.signed_in() as client:
            headers.update(cookie_header(client))
    attempt = try_h2c(stack.daemon.ports["public"], path, headers)
    assert attempt.status != 101
    assert 200 <= attempt.status < 500, attempt  # answered as an ordinary request (or refused)
    assert attempt.after == b"" or attempt.after.startswith(b"HTTP/1.1 "), attempt.after[:40]


@pytest.mark.parametrize(
    "upgrades", [("h2c", "websocket"), ("websocket", "h2c"), ("H2C",), ("websocket, h2c",)]
)
def test_an_h2c_upgrade_among_others_never_crosses_caddy(stack: Stack, upgrades: tuple[str, ...]) -> None:
    for path in ("/auth/login", "/admin/health"):
        attempt = try_h2c(stack.daemon.ports["public"], path, {}, upgrades)
        assert attempt.status != 101, (path, upgrades)
        assert attempt.after == b"" or attempt.after.startswith(b"HTTP/1.1 "), attempt.after[:40]


@pytest.mark.parametrize("path", ["/auth/login", "/admin/health", "/admin/repos", "/", "/session"])
def test_the_app_itself_never_switches_to_http2(stack: Stack, path: str) -> None:
    """Anything on loopback (the agent too) can reach the app's port without Caddy."""
    app = stack.daemon.ports["app"]
    with stack.signed_in() as client:
        attempt = try_h2c(app, path, cookie_header(client))
    assert attempt.status != 101
    assert 200 <= attempt.status < 500
    assert attempt.after == b"" or attempt.after.startswith(b"HTTP/1.1 "), attempt.after[:40]


def test_http2_with_prior_knowledge_is_refused_everywhere(stack: Stack) -> None:
    for port in (stack.daemon.ports["app"], stack.daemon.ports["public"]):
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            sock.sendall(H2_PREFACE)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        # hypercorn: an unknown method in HTTP/1.1; Caddy (HTTP/1.1 only): closed, or a 4xx
        assert answer == b"" or re.match(rb"HTTP/1\.1 4\d\d ", answer), (port, answer[:40])


def test_a_websocket_still_crosses_caddy(stack: Stack) -> None:
    """opencode's terminal is a WebSocket: the one upgrade that may pass."""
    with stack.signed_in() as client:
        pty = client.post("/pty", json={"command": "sleep", "args": ["600"]})
        assert pty.status_code == 200, pty.text
        pty_id = pty.json()["id"]
        try:
            answer = rawhttp.first_answer(
                stack.daemon.ports["public"],
                request_head(
                    "GET",
                    f"/pty/{pty_id}/connect",
                    stack.daemon.ports["public"],
                    {
                        **cookie_header(client),
                        "Origin": stack.url,
                        "Connection": "Upgrade",
                        "Upgrade": "websocket",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    },
                ),
            )
            assert answer.startswith(b"HTTP/1.1 101 "), answer[:200]
            assert b"upgrade: websocket" in answer.lower()
        finally:
            client.delete(f"/pty/{pty_id}")


# -- bodies bounded before they are parsed --------------------------------------------------------------

MULTIPART_HEAD = b'--B\r\nContent-Disposition: form-data; name="password"; filename="p.bin"\r\n\r\n'


def spooled_files(stack: Stack) -> list[str]:
    """Files the daemon holds open in its temporary directory (a spooled upload would be one)."""
    temp = str(stack.root / "tmp")
    fds = Path(f"/proc/{stack.daemon.proc.pid}/fd")
    found = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(temp):
                found.append(target)
    return found


@pytest.mark.parametrize("through", ["caddy", "app"])
def test_a_64_mb_chunked_multipart_login_is_refused_early(stack: Stack, through: str) -> None:
    """Measured before: spooled to a temp file without bound, 1.6 GB in 12 s."""
    port = stack.daemon.ports["public" if through == "caddy" else "app"]
    rss_before = psutil.Process(stack.daemon.proc.pid).memory_info().rss
    head = request_head(
        "POST",
        "/auth/login",
        port,
        {
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "multipart/form-data; boundary=B",
            "Transfer-Encoding": "chunked",
        },
    )
    total = 64 << 20
    sent = rawhttp.upload(port, head, MULTIPART_HEAD, total=total)
    assert sent.status == 413, sent.answer[:200]
    assert b'{"error": "' in sent.answer  # one line saying why, from Caddy or from the app
    assert sent.sent < total // 2  # refused while most of it was still to come
    assert spooled_files(stack) == []
    rss_after = psutil.Process(stack.daemon.proc.pid).memory_info().rss
    assert rss_after - rss_before < 16 << 20  # nothing of it kept in memory either


@pytest.mark.parametrize(
    ("path", "total"),
    [("/admin/gc", 64 << 20), ("/session", 128 << 20)],  # the app's API (1 MB), opencode's (50 MB)
)
def test_every_route_bounds_its_body(stack: Stack, path: str, total: int) -> None:
    port = stack.daemon.ports["public"]
    with stack.signed_in() as client:
        head = request_head(
            "POST",
            path,
            port,
            {
                **cookie_header(client),
                "Origin": stack.url,
                "Content-Type": "application/json",
                "Transfer-Encoding": "chunked",
            },
        )
    sent = rawhttp.upload(port, head, b'{"x": "', total=total, piece=256 << 10)
    assert sent.status == 413, sent.answer[:200]
    assert b"request body too large" in sent.answer
    assert sent.sent < total


# -- sessions on the server -----------------------------------------------------------------------------


def test_after_logout_a_copy_of_the_cookie_is_worthless(stack: Stack) -> None:
    """Measured before: the same cookie still got 200 after POST /auth/logout."""
    client = stack.login()
    stolen = cookie_header(client)
    assert client.get("/session").status_code == 200
    assert client.post("/auth/logout").status_code == 303
    client.close()
    with httpx.Client(base_url=stack.url, timeout=15) as thief:
        assert thief.get("/session", headers=stolen).status_code == 401
        assert thief.get("/admin/repos", headers=stolen).status_code == 401
        page = thief.get("/session/ses_x", headers={**stolen, **NAVIGATE})
        assert page.status_code == 302
        assert page.headers["location"].startswith("/auth/login")


def test_sessions_are_listed_and_ended_through_the_wall_and_on_the_socket(stack: Stack) -> None:
    phone, laptop = stack.login(), stack.login()
    try:
        listed = phone.get("/admin/sessions")
        assert listed.status_code == 200
        sessions = listed.json()["sessions"]
        assert sum(s["current"] for s in sessions) == 1
        assert all(set(s) == {"id", "created", "last_seen", "user_agent", "current"} for s in sessions)
        assert phone.cookies[COOKIE].split(".")[0] not in listed.text  # never the session id itself
        assert phone.delete("/admin/sessions", headers={"Origin": "https://evil.example"}).status_code == 403
        ended = phone.delete("/admin/sessions")
        assert ended.status_code == 200
        assert ended.json()["ended"] >= 2
        assert phone.get("/session").status_code == 401
        assert laptop.get("/session").status_code == 401
        assert stack.daemon.get("/admin/sessions").json() == {"sessions": []}

        again = stack.login()
        assert again.get("/session").status_code == 200
        result = stack.daemon.ctl("logout", "--all")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ended 1 session(s): every browser must log in again"
        assert again.get("/session").status_code == 401
        again.close()
    finally:
        phone.close()
        laptop.close()


def test_the_admin_api_documents_the_session_routes(stack: Stack) -> None:
    spec = stack.daemon.get("/admin/openapi.json").json()
    listing = spec["paths"]["/admin/sessions"]["get"]["responses"]["200"]
    assert "SessionList" in json.dumps(listing)
    ended = spec["paths"]["/admin/sessions"]["delete"]["responses"]["200"]
    assert "SessionsEnded" in json.dumps(ended)


# -- configuration through the wall ---------------------------------------------------------------------


def test_through_the_wall_config_tunes_but_never_declares_what_runs(stack: Stack) -> None:
    """Measured before: a cookie made the daemon run a program as root, and it persisted."""
    settings = stack.daemon.data_dir / "settings.toml"
    app = f"http://127.0.0.1:{stack.daemon.ports['app']}"
    with stack.signed_in() as client:
        cookies = cookie_header(client)
        for base in (stack.url, app):  # through Caddy, and straight to the app's port
            with httpx.Client(base_url=base, headers={**cookies, "Sec-Fetch-Site": "same-origin"}) as wall:
                for method, key, value in [
                    ("PUT", "services.x.argv", '["touch", "/tmp/owned"]'),
                    ("PUT", "services.opencode.argv", '["sh", "-c", "id"]'),
                    ("PUT", "services.opencode.env.NODE_OPTIONS", "--require=/tmp/x.js"),
                    ("PUT", "git.remote_url", "https://evil.example/{owner}/{name}.git"),
                    ("PUT", "services.caddy.probe.url", "http://evil.example/"),
                    ("DELETE", "services.opencode.argv", None),
                ]:
                    body = {"value": value} if value is not None else None
                    response = wall.request(method, f"/admin/config/{key}", json=body)
                    assert response.status_code == 403, (base, key, response.text)
                    error = response.json()["error"]
                    assert error.startswith(f"config: {key}: cannot be changed through the web")
                    assert "dancodes-ctl config set" in error
                    assert "\n" not in error
                tuned = wall.put("/admin/config/gc.idle_days", json={"value": "21"})
                assert tuned.status_code == 200, tuned.text
                assert tuned.json()["value"] == 21
    assert "argv" not in settings.read_text()
    assert "evil" not in settings.read_text()
    assert "x" not in {s["name"] for s in stack.daemon.get("/admin/services").json()["services"]}

    # the control socket may change anything, as before
    with stack.daemon.client() as operator:
        added = operator.put("/admin/config/services.x.argv", json={"value": '["sleep", "600"]'})
        assert added.status_code == 200, added.text
        assert stack.daemon.wait_for(lambda: stack.daemon.service("x")["state"] == "running", 30, "x runs")
        assert operator.delete("/admin/config/services.x.argv").status_code == 200
        assert operator.delete("/admin/config/gc.idle_days").status_code == 200
    services = {s["name"] for s in stack.daemon.get("/admin/services").json()["services"]}
    assert "x" not in services


# -- health -------------------------------------------------------------------------------------------


def test_public_health_says_only_whether_it_is_up(stack: Stack) -> None:
    """Measured before: pids, version, uptime and disk for anyone."""
    assert httpx.get(f"{stack.url}/admin/health", timeout=15).json() == {"status": "ok"}
    direct = httpx.get(f"http://127.0.0.1:{stack.daemon.ports['app']}/admin/health", timeout=15)
    assert direct.json() == {"status": "ok"}
    with stack.signed_in() as client:
        full = client.get("/admin/health").json()
    assert full["daemon"]["version"]
    assert full["services"]["caddy"]["state"] == "running"
    on_socket = stack.daemon.get("/admin/health").json()
    assert set(on_socket) >= {"status", "daemon", "services", "disk"}
    status = stack.daemon.ctl("status")
    assert status.returncode == 0, status.stderr
    assert "daemon pid" in status.stdout


# -- X-Forwarded-For is Caddy's word only (after the bodies: these lock the direct bucket out) ----


def test_a_client_that_bypasses_caddy_cannot_pick_its_throttle_bucket(stack: Stack) -> None:
    """Measured before: 200 passwords by rotating X-Forwarded-For, and the owner locked out as 127.0.0.1."""
    app = f"http://127.0.0.1:{stack.daemon.ports['app']}"
    forged = ["127.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
    statuses = []
    with httpx.Client(base_url=app, headers={"Sec-Fetch-Site": "same-origin"}, timeout=15) as direct:
        for address in forged:
            response = direct.post(
                "/auth/login",
                data={"password": "direct-wrong-guess"},
                headers={"X-Forwarded-For": address, "X-Dancodes-Proxy": "a-guess"},
            )
            statuses.append(response.status_code)
        assert statuses[:4] == [401, 401, 401, 401]
        assert statuses[-1] == 429, statuses  # one bucket, whatever it claims to be
        # and while it is locked out, its body is not even waited for
        answer = rawhttp.first_answer(
            stack.daemon.ports["app"],
            request_head(
                "POST",
                "/auth/login",
                stack.daemon.ports["app"],
                {
                    "Sec-Fetch-Site": "same-origin",
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Transfer-Encoding": "chunked",
                },
            ),
        )
        assert answer.startswith(b"HTTP/1.1 429 ")
        assert b"connection: close" in answer.lower()
    failed = [e for e in stack.daemon.events() if e.get("event") == "login_failed"]
    assert {e["client"] for e in failed if e["failures"] >= 1} >= {"direct:127.0.0.1"}
    assert not any(e["client"] in forged[1:] for e in failed)
    # the owner, through Caddy from this same machine, was never locked out
    with stack.signed_in():
        pass


def test_a_client_cannot_pose_as_caddy_through_caddy(stack: Stack) -> None:
    with stack.anonymous() as client:
        response = client.post(
            "/auth/login",
            data={"password": "posing-wrong-guess"},
            headers={"X-Dancodes-Proxy": "a-guess", "X-Forwarded-For": "10.9.9.9"},
        )
        assert response.status_code == 401
    posing = [e for e in stack.daemon.events() if e.get("event") == "login_failed"][-1]
    assert posing["client"] == "127.0.0.1"  # Caddy's word: its secret replaced the guess
    with stack.signed_in():  # and a good login clears the count again
        pass


def test_only_caddy_gets_the_proxy_secret(stack: Stack) -> None:
    def environ(service: str) -> dict[str, str]:
        pid = stack.daemon.service(service)["pid"]
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)

    secret = environ("caddy")["DANCODES_PROXY_SECRET"]
    assert len(secret) >= 43
    assert "DANCODES_PROXY_SECRET" not in environ("opencode")
    assert secret not in json.dumps(environ("opencode"))
    assert secret not in stack.daemon.log()


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
    # through Caddy the client is what Caddy saw; "direct:" ones are the tests that bypassed it
    clients = {e.get("client") for e in events}
    assert "127.0.0.1" in clients
    assert clients <= {"127.0.0.1", "direct:127.0.0.1"}
    assert "hunter2-wrong-guess" not in stack.daemon.log()
    assert TEST_PASSWORD not in stack.daemon.log()


def test_a_locked_out_client_is_refused_long_before_its_body_ends(stack: Stack) -> None:
    """After the lockout above (30 s), a 64 MB multipart login through Caddy.

    Measured before: spooled to disk even while the client was locked out. The app answers 429
    before reading any of the body (the bypass test above shows it on the app's own port); Caddy,
    which does not pass on an answer that comes while it still forwards the body, stops at its 16 KB
    bound for /auth/*: the client sees one of the two, long before its body ends, and nothing is kept.
    """
    port = stack.daemon.ports["public"]
    head = request_head(
        "POST",
        "/auth/login",
        port,
        {
            "Origin": stack.url,
            "Content-Type": "multipart/form-data; boundary=B",
            "Transfer-Encoding": "chunked",
        },
    )
    total = 64 << 20
    sent = rawhttp.upload(port, head, MULTIPART_HEAD, total=total)
    assert sent.status in (413, 429), sent.answer[:200]
    assert sent.sent < total // 2
    assert spooled_files(stack) == []


NO_OPENCODE = """
[services.opencode]
enabled = false
"""
OLD_SECRET = "the-old-secret-0123456789abcdefghijklmnop"
NEW_SECRET = "the-new-secret-0123456789abcdefghijklmnop"
DAY = 86400.0


def cookie_signed(secret: str, at: float, session: str) -> str:
    return CookieSigner(secret, max_age=30 * DAY, clock=lambda: at).issue(session)


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
    # a session signed in before the rotation, kept in the data dir across it
    session = SessionStore(data, max_age=30 * DAY, clock=time.time).create("the phone")
    env = dict(daemon_env(tmp_path), AUTH_SECRET=NEW_SECRET, AUTH_SECRET_PREVIOUS=OLD_SECRET)
    daemon = start_daemon(NO_OPENCODE, wait_healthy=False, env=env)
    public = f"http://127.0.0.1:{daemon.ports['public']}"
    daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")

    def status(cookie: str) -> int:
        with httpx.Client(base_url=public, cookies={COOKIE: cookie}, timeout=10) as client:
            return client.get("/admin/repos").status_code

    assert status(cookie_signed(NEW_SECRET, now, session)) == 200
    assert status(cookie_signed(NEW_SECRET, now - 29 * DAY, session)) == 200
    assert status(cookie_signed(NEW_SECRET, now - 31 * DAY, session)) == 401  # expired: 30 days
    assert status(cookie_signed(OLD_SECRET, now, session)) == (200 if old_cookie_works else 401)
    assert status(cookie_signed("some-other-secret-0123456789abcdefghijkl", now, session)) == 401
    # signed with the key but naming no session: forged with the key alone, or signed out
    assert status(cookie_signed(NEW_SECRET, now, new_session_id())) == 401


# -- the Caddyfile alone, in front of an upstream that shows what reached it ----------------------


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # Caddy cutting an oversized body short is what the tests want to see


class Echo:
    """An upstream on loopback that answers every request with the headers it received, as JSON."""

    def __init__(self) -> None:
        outer = self
        self.bodies: list[int] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(len(self.rfile.read(length)) if length else 0)
                self.answer()

            def answer(self) -> None:
                body = json.dumps([[k.lower(), v] for k, v in self.headers.items()]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Echo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


PROXY_SECRET = "a-proxy-secret-for-this-test-0123456789abcdef"


@pytest.fixture(scope="module")
def bare_caddy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Echo]]:
    """conf/Caddyfile as the daemon runs it, but with the echo upstream as the app and as opencode."""
    with caddy_in_front_of_echo(tmp_path_factory.mktemp("caddyfile")) as running:
        yield running


@contextlib.contextmanager
def caddy_in_front_of_echo(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[tuple[int, Echo]]:
    """conf/Caddyfile with the echo upstream as the app and as opencode, `extra_env` added to its env."""
    run = Path(tempfile.mkdtemp(prefix="dc-caddy-"))  # unix socket paths must stay short
    port = free_port()
    with Echo() as echo:
        env = {
            **os.environ,
            **tls.caddy_env("off", "", "", port),
            **(extra_env or {}),
            "DANCODES_APP_PORT": str(echo.port),
            "DANCODES_OPENCODE_PORT": str(echo.port),
            "DANCODES_CADDY_ADMIN": f"unix/{run}/admin.sock",
            "DANCODES_WEB_ROOT": str(tmp),
            "DANCODES_AUTH_SOCKET": str(run / "auth.sock"),
            "DANCODES_PROXY_SECRET": PROXY_SECRET,
            "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CONFIG_HOME": str(tmp / "config"),
        }
        caddy = resolve_executable("caddy", search_path())
        assert caddy is not None
        log = (tmp / "caddy.log").open("wb")
        proc = subprocess.Popen(
            [caddy, "run", "--config", str(layout().conf_dir / "Caddyfile"), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, (tmp / "caddy.log").read_text()[-2000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/auth/x", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "Caddy did not start"
                time.sleep(0.05)
            yield port, echo
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
            shutil.rmtree(run, ignore_errors=True)


def reached(port: int, path: str, headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The headers the upstream got for a GET through Caddy, by lowercase name."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    got: dict[str, list[str]] = {}
    for name, value in json.loads(body):
        got.setdefault(name, []).append(value)
    return got


@pytest.mark.parametrize(
    "upgrades",
    [["h2c"], ["H2C"], ["h2c", "websocket"], ["websocket", "h2c"], ["websocket, h2c"], ["TLS/1.0"]],
)
@pytest.mark.parametrize("path", ["/auth/login", "/admin/health"])
def test_caddy_drops_every_upgrade_but_websocket(
    bare_caddy: tuple[int, Echo], path: str, upgrades: list[str]
) -> None:
    port, _ = bare_caddy
    fields = [("Connection", "Upgrade, HTTP2-Settings"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
    got = reached(port, path, fields + [("Upgrade", value) for value in upgrades])
    assert "upgrade" not in got
    assert "http2-settings" not in got


def test_caddy_passes_a_websocket_upgrade(bare_caddy: tuple[int, Echo]) -> None:
    port, _ = bare_caddy
    for value in ("websocket", "WebSocket"):
        got = reached(
            port,
            "/auth/login",
            [("Connection", "Upgrade"), ("Upgrade", value), ("Sec-WebSocket-Version", "13")],
        )
        assert [v.lower() for v in got["upgrade"]] == ["websocket"]


def test_caddy_alone_vouches_for_the_client_address(bare_caddy: tuple[int, Echo]) -> None:
    port, _ = bare_caddy
    got = reached(
        port,
        "/auth/login",
        [
            ("X-Dancodes-Proxy", "a-guess"),
            ("X-Dancodes-Proxy", PROXY_SECRET),
            ("X-Forwarded-For", "10.1.2.3"),
        ],
    )
    assert got["x-dancodes-proxy"] == [PROXY_SECRET]  # Caddy's own, once; a client's copies are gone
    assert got["x-forwarded-for"] == ["127.0.0.1"]


def test_caddy_sends_the_installable_files_to_the_app_even_unbuilt(bare_caddy: tuple[int, Echo]) -> None:
    """Outside the wall, and to the app alone: not built (this web root is empty), the app says so; they
    never fall through to opencode without the wall. Anything else goes through forward_auth first (whose
    socket does not exist here: refused)."""
    port, _ = bare_caddy
    for path in PUBLIC_FILES:
        got = reached(port, path, [])
        assert got["x-dancodes-proxy"] == [PROXY_SECRET], path  # the app's route
        assert "authorization" not in got  # not opencode's
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
        for path in ["/sw.js/x", "/_app/icon-193.png", "/_app/index.js", "/"]:
            assert client.get(path).status_code >= 500, path  # the wall's check could not be asked


def test_caddy_bounds_bodies_per_route(bare_caddy: tuple[int, Echo]) -> None:
    port, echo = bare_caddy
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
        assert client.post("/auth/login", content=b"p" * 15_000).status_code == 200
        too_big = client.post("/auth/login", content=b"p" * 17_000)
        assert too_big.status_code == 413
        assert too_big.json() == {"error": "request body too large"}
        assert client.post("/admin/health", content=b"p" * 17_000).status_code == 413
    assert 15_000 in echo.bodies
    assert all(size <= 16_000 for size in echo.bodies)
