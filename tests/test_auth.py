"""The auth wall in-process: secrets, cookies, rotation, throttle, CSRF, next=, the routes, the responder.

Clocks are injected: `Clock` stands in for wall time (cookie ages, the rotation window) and for the
throttle's monotonic clock. The routes run on a bare QuartTrio app with only the auth blueprint
(plus a stand-in admin blueprint for `require_auth`) through Quart's test client; the fast
forward_auth responder runs on a real unix socket. The end-to-end tests through Caddy are in
test_wall.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import string
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
import werkzeug.formparser
from itsdangerous import TimestampSigner
from quart import Blueprint, Quart, Response
from quart.typing import TestClientProtocol as QuartTestClient
from quart_trio import QuartTrio
from structlog.testing import capture_logs
from werkzeug.exceptions import RequestEntityTooLarge

from supervisor.api.body import BoundedBody, BoundedRequest
from supervisor.auth import CONFIG_KEY, AuthSecrets, AuthWall, auth, require_auth, serve_forward_auth
from supervisor.auth.cookie import CookieSigner, Verdict
from supervisor.auth.nextpath import login_url, safe_next
from supervisor.auth.origin import (
    configured_origin,
    csrf_refusal,
    header_map,
    is_navigation,
    normalize_origin,
    request_origin,
)
from supervisor.auth.page import login_page
from supervisor.auth.rotation import ROTATION_FILE, fingerprint, rotation_started
from supervisor.auth.sessions import (
    SESSIONS_FILE,
    SessionStore,
    is_session_id,
    new_session_id,
    session_hash,
)
from supervisor.auth.throttle import LOCAL, Throttle, client_key
from supervisor.config import AuthSettings, RestartPolicy, load_config
from supervisor.errors import ConfigError, DataDirError, MissingSecret
from supervisor.tunables import TUNABLE_TABLES, tunable_through_wall, wall_refusal

PASSWORD = "correct horse battery staple"
SECRET = "s" * 16 + "current-secret-0123456789"
OLD_SECRET = "o" * 16 + "previous-secret-0123456789"
DAY = 86400.0
T0 = 1_800_000_000.0  # a fixed "now" for wall-clock tests
ORIGIN = "http://localhost"  # the origin the wall derives from the Host the test client sends
# hypercorn's scope on the TCP listener; the socket has neither address
TCP = {"server": ("127.0.0.1", 4097), "client": ("127.0.0.1", 50123)}
SID = "S" * 32  # a well-formed session id for the signer alone
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


class Clock:
    """A settable clock for both wall time and the throttle's monotonic time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def env(**extra: str) -> dict[str, str]:
    return {"AUTH_PASSWORD": PASSWORD, "AUTH_SECRET": SECRET, **extra}


def make_wall(
    data_dir: Path,
    *,
    clock: Clock | None = None,
    monotonic: Clock | None = None,
    settings: AuthSettings | None = None,
    origin: str | None = None,
    **environ: str,
) -> AuthWall:
    return AuthWall(
        settings or AuthSettings(),
        AuthSecrets.from_env(env(**environ)),
        data_dir=data_dir,
        origin=origin,
        clock=clock or Clock(T0),
        monotonic=monotonic or Clock(0.0),
    )


def cookie_of(wall: AuthWall) -> dict[str, str]:
    return {"cookie": f"{wall.cookie_name}={wall.issue()}"}


# -- secrets ----------------------------------------------------------------------------------------


def test_secrets_come_from_the_environment() -> None:
    secrets = AuthSecrets.from_env(env(AUTH_SECRET_PREVIOUS=OLD_SECRET))
    assert (secrets.password, secrets.secret, secrets.previous) == (PASSWORD, SECRET, OLD_SECRET)
    assert PASSWORD not in repr(secrets)
    assert SECRET not in repr(secrets)
    assert AuthSecrets.from_env(env()).previous is None
    assert AuthSecrets.from_env(env(AUTH_SECRET_PREVIOUS=SECRET)).previous is None  # no real rotation


@pytest.mark.parametrize(
    ("environ", "name", "hint"),
    [
        ({"AUTH_SECRET": SECRET}, "AUTH_PASSWORD", "is not set"),
        ({"AUTH_PASSWORD": "", "AUTH_SECRET": SECRET}, "AUTH_PASSWORD", "is not set"),
        ({"AUTH_PASSWORD": PASSWORD}, "AUTH_SECRET", "is not set"),
        ({"AUTH_PASSWORD": PASSWORD, "AUTH_SECRET": "short-secret"}, "AUTH_SECRET", "too short (12"),
        (
            {"AUTH_PASSWORD": PASSWORD, "AUTH_SECRET": SECRET, "AUTH_SECRET_PREVIOUS": "x" * 31},
            "AUTH_SECRET_PREVIOUS",
            "too short (31",
        ),
    ],
)
def test_missing_or_short_secrets_refuse_to_start(environ: dict[str, str], name: str, hint: str) -> None:
    with pytest.raises(MissingSecret) as caught:
        AuthSecrets.from_env(environ)
    message = str(caught.value)
    assert message.startswith(name)
    assert hint in message
    assert caught.value.key == name
    assert "\n" not in message
    if name != "AUTH_PASSWORD":
        assert "at least 32 characters" in message
        assert "secrets.token_urlsafe(32)" in message
    for value in environ.values():
        if value and value not in (PASSWORD, SECRET):
            assert value not in message  # a short secret is still a secret


def test_wall_from_config_reads_env_and_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANCODES_DATA_DIR", str(tmp_path))
    loaded = load_config()
    with pytest.raises(MissingSecret, match="AUTH_SECRET"):
        AuthWall.from_config(loaded, {"AUTH_PASSWORD": PASSWORD})
    wall = AuthWall.from_config(loaded, env(DANCODES_PUBLIC_ORIGIN="https://Dan.Example.com/"))
    assert wall.origin == "https://dan.example.com"
    assert wall.max_age == 30 * 86400
    with pytest.raises(ConfigError, match="DANCODES_PUBLIC_ORIGIN"):
        AuthWall.from_config(loaded, env(DANCODES_PUBLIC_ORIGIN="dan.example.com"))


def test_password_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    secrets = AuthSecrets.from_env(env())
    assert secrets.password_matches(PASSWORD)
    assert not secrets.password_matches(PASSWORD + " ")
    assert not secrets.password_matches("")
    assert not secrets.password_matches("\ud800")  # a lone surrogate from a mangled form is just wrong
    assert len(calls) == 4
    assert calls[0] == (PASSWORD.encode(), PASSWORD.encode())
    unicode = AuthSecrets(password="pässwörd", secret=SECRET)
    assert unicode.password_matches("pässwörd")
    assert not unicode.password_matches("passwort")


# -- the cookie -------------------------------------------------------------------------------------


def test_an_issued_cookie_is_valid() -> None:
    clock = Clock(T0)
    signer = CookieSigner(SECRET, max_age=30 * DAY, clock=clock)
    session_id = new_session_id()
    value = signer.issue(session_id)
    assert value.startswith(f"{session_id}.")
    assert signer.open(value) == (Verdict.VALID, session_id)
    assert signer.open(value) == (Verdict.VALID, session_id)  # the second time from the cache
    clock.advance(29 * DAY)
    assert signer.verify(value) is Verdict.VALID
    with pytest.raises(ValueError):
        signer.issue("v1")  # only session ids are signed


def test_a_cookie_from_before_sessions_is_refused() -> None:
    """A v1 cookie (payload "v1", no session) was signed with the same key: it opens nothing now."""
    clock = Clock(T0)
    v1 = TimestampSigner(
        SECRET, salt=b"dancodes.auth.cookie", key_derivation="hmac", digest_method=hashlib.sha256
    ).sign(b"v1")
    signer = CookieSigner(SECRET, max_age=30 * DAY, clock=clock)
    assert signer.open(v1.decode()) == (Verdict.INVALID, "")
    assert signer.verify(signer.issue(SID)) is Verdict.VALID  # the same key signs the new ones


def test_tampered_cookies_are_refused() -> None:
    signer = CookieSigner(SECRET, max_age=30 * DAY, clock=Clock(T0))
    value = signer.issue(SID)
    payload, stamp, signature = value.split(".")
    tampered = [
        f"{payload}.{stamp}.{signature[:5]}{'A' if signature[5] != 'A' else 'B'}{signature[6:]}",
        f"v2.{stamp}.{signature}",
        f"{payload}x.{stamp}.{signature}",
        f"{payload}.{stamp}A.{signature}",
        f"{payload}.{signature}",
        value + "x",
        "x" + value,
        payload,
        "",
        "not-a-cookie",
        "a.b.c",
        "é" * 10,
        value * 5,
    ]
    for bad in tampered:
        assert signer.verify(bad) is Verdict.INVALID, bad
    assert signer.verify(None) is Verdict.INVALID
    other = CookieSigner("z" * 40, max_age=30 * DAY, clock=Clock(T0))
    assert other.verify(value) is Verdict.INVALID


def test_every_other_last_character_of_the_signature_is_refused() -> None:
    """Base64's spare bits: some other last characters decode to the same bytes; none may pass."""
    for i in range(16):  # different timestamps, different signatures
        signer = CookieSigner(SECRET, max_age=30 * DAY, clock=Clock(T0 + 1000 * i))
        value = signer.issue(SID)
        for char in string.ascii_letters + string.digits + "-_":
            if char != value[-1]:
                assert signer.verify(value[:-1] + char) is Verdict.INVALID, (value, char)


def test_an_expired_cookie_is_refused() -> None:
    clock = Clock(T0 - 31 * DAY)
    signer = CookieSigner(SECRET, max_age=30 * DAY, clock=clock)
    old = signer.issue(SID)  # signed 31 days before T0
    clock.now = T0
    assert signer.verify(old) is Verdict.INVALID


def test_the_cache_never_outlives_the_cookie() -> None:
    clock = Clock(T0)
    signer = CookieSigner(SECRET, max_age=30 * DAY, clock=clock)
    value = signer.issue(SID)
    assert signer.verify(value) is Verdict.VALID  # now cached
    clock.advance(30 * DAY + 1)
    assert signer.verify(value) is Verdict.INVALID


def test_a_cookie_from_the_future_is_refused() -> None:
    clock = Clock(T0 + DAY)
    value = CookieSigner(SECRET, max_age=30 * DAY, clock=clock).issue(SID)
    assert CookieSigner(SECRET, max_age=30 * DAY, clock=Clock(T0)).verify(value) is Verdict.INVALID


# -- key rotation -----------------------------------------------------------------------------------


def test_the_previous_secret_works_inside_the_rotation_window(tmp_path: Path) -> None:
    clock = Clock(T0)
    old_cookie = make_wall(tmp_path, clock=clock, AUTH_SECRET=OLD_SECRET).issue()  # its session is kept
    wall = make_wall(tmp_path, clock=clock, AUTH_SECRET_PREVIOUS=OLD_SECRET)
    header = {"cookie": f"dancodes_auth={old_cookie}"}
    assert wall.verify(header) is Verdict.VALID_PREVIOUS
    clock.advance(7 * DAY - 1)
    assert wall.verify(header) is Verdict.VALID_PREVIOUS
    clock.advance(2)
    assert wall.verify(header) is Verdict.INVALID  # the cached verdict ends with the window too
    assert wall.verify(cookie_of(wall)) is Verdict.VALID  # new cookies are signed with the new key


def test_the_rotation_start_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock(T0)
    make_wall(tmp_path, clock=clock, AUTH_SECRET_PREVIOUS=OLD_SECRET)
    path = tmp_path / ROTATION_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    recorded = json.loads(path.read_text())
    assert recorded["since"] == T0
    assert recorded["fingerprint"] == fingerprint(OLD_SECRET, SECRET)
    assert SECRET not in path.read_text()
    assert OLD_SECRET not in path.read_text()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind

    clock.advance(3 * DAY)  # a restart three days in: the window still ends at T0 + 7 days
    wall = make_wall(tmp_path, clock=clock, AUTH_SECRET_PREVIOUS=OLD_SECRET)
    assert wall.signer.previous_until == T0 + 7 * DAY
    assert json.loads(path.read_text())["since"] == T0


def test_after_the_window_previous_secret_cookies_are_refused(tmp_path: Path) -> None:
    old_cookie = make_wall(tmp_path, AUTH_SECRET=OLD_SECRET).issue()
    record = {"fingerprint": fingerprint(OLD_SECRET, SECRET), "since": T0 - 8 * DAY}
    (tmp_path / ROTATION_FILE).write_text(json.dumps(record))
    wall = make_wall(tmp_path, AUTH_SECRET_PREVIOUS=OLD_SECRET)
    assert wall.verify({"cookie": f"dancodes_auth={old_cookie}"}) is Verdict.INVALID
    assert wall.verify(cookie_of(wall)) is Verdict.VALID


def test_a_new_pair_or_a_damaged_file_starts_a_new_window(tmp_path: Path) -> None:
    record = {"fingerprint": fingerprint("a" * 40, SECRET), "since": T0 - 30 * DAY}
    (tmp_path / ROTATION_FILE).write_text(json.dumps(record))
    assert rotation_started(tmp_path, OLD_SECRET, SECRET, T0) == T0
    (tmp_path / ROTATION_FILE).write_text("{not json")
    assert rotation_started(tmp_path, OLD_SECRET, SECRET, T0 + 5) == T0 + 5
    assert rotation_started(tmp_path, OLD_SECRET, SECRET, T0 + 9) == T0 + 5
    assert fingerprint(OLD_SECRET, SECRET) != fingerprint(SECRET, OLD_SECRET)
    assert len(fingerprint(OLD_SECRET, SECRET)) == 32


def test_a_zero_rotation_window_refuses_the_previous_secret_at_once(tmp_path: Path) -> None:
    old_cookie = make_wall(tmp_path, AUTH_SECRET=OLD_SECRET).issue()
    wall = make_wall(tmp_path, settings=AuthSettings(rotation_window_days=0), AUTH_SECRET_PREVIOUS=OLD_SECRET)
    assert wall.verify({"cookie": f"dancodes_auth={old_cookie}"}) is Verdict.INVALID


# -- the throttle -----------------------------------------------------------------------------------


def test_lockouts_double_after_the_free_attempts_and_cap() -> None:
    clock = Clock(0.0)
    throttle = Throttle(free_attempts=3, lockout_initial=1.0, lockout_max=5.0, clock=clock)
    lockouts = [throttle.failed("1.2.3.4").lockout for _ in range(8)]
    assert lockouts == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert throttle.retry_after("1.2.3.4") == 5.0
    assert throttle.retry_after("5.6.7.8") == 0.0
    clock.advance(4.5)
    assert throttle.retry_after("1.2.3.4") == pytest.approx(0.5)
    clock.advance(0.5)
    assert throttle.retry_after("1.2.3.4") == 0.0
    throttle.succeeded("1.2.3.4")
    assert [throttle.failed("1.2.3.4").lockout for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_the_throttle_keeps_bounded_memory() -> None:
    clock = Clock(0.0)
    throttle = Throttle(
        free_attempts=0, lockout_initial=1.0, lockout_max=10.0, clock=clock, max_clients=3, forget_after=100
    )
    for client in ("a", "b", "c", "d"):
        throttle.failed(client)
    assert len(throttle) == 3
    assert throttle.retry_after("a") == 0.0  # evicted, least recently failed
    assert throttle.retry_after("d") == 1.0
    clock.advance(500)
    throttle.failed("e")  # long-expired entries are dropped on the way
    assert len(throttle) == 1
    for _ in range(5000):  # a long siege neither overflows nor grows
        failure = throttle.failed("e")
    assert failure.lockout == 10.0
    assert failure.failures == 5001


@pytest.mark.parametrize(
    ("forwarded", "key"),
    [
        (None, LOCAL),
        ("", LOCAL),
        ("203.0.113.9", "203.0.113.9"),
        ("10.9.8.7, 203.0.113.9", "203.0.113.9"),  # only the entry Caddy added counts
        (" 10.9.8.7 ,203.0.113.9 ", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("garbage", "garbage"),
    ],
)
def test_the_client_is_the_last_forwarded_for_entry(forwarded: str | None, key: str) -> None:
    assert client_key(forwarded) == key


# -- next= ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "//evil.com/%2F..",
        "/%2F%2Fevil.com",
        "%2F%2Fevil.com",
        "/%5Cevil.com",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x",
        "/\r\nSet-Cookie:x",
        "/a\tb",
        "http:/evil.com",
        "evil.com",
        " /x",
        "/auth/login?next=/x",
        "/auth/logout",
        "/" + "a" * 3000,
    ],
)
def test_next_refuses_anything_but_a_local_path(raw: str | None) -> None:
    assert safe_next(raw) == "/"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("/", "/"),
        ("/session/ses_1?tab=2&x=y", "/session/ses_1?tab=2&x=y"),
        ("/a/b%20c#frag", "/a/b%20c#frag"),
        ("/über", "/%C3%BCber"),
        ("/a b", "/a%20b"),
        ("/x:y@z", "/x:y@z"),
    ],
)
def test_next_keeps_local_paths(raw: str, kept: str) -> None:
    assert safe_next(raw) == kept


def test_login_url_carries_next() -> None:
    assert login_url("/") == "/auth/login"
    assert login_url("//evil.com") == "/auth/login"
    assert login_url("/s?a=1&b=2") == "/auth/login?next=%2Fs%3Fa%3D1%26b%3D2"


# -- origins and CSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://Dan.Example.com", "https://dan.example.com"),
        ("https://dan.example.com/", "https://dan.example.com"),
        ("https://dan.example.com:443", "https://dan.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("dan.example.com", None),
        ("ftp://dan.example.com", None),
        ("https://dan.example.com/path", None),
        ("https://user@dan.example.com", None),
        ("https://dan.example.com:99999", None),
        ("null", None),
    ],
)
def test_origins_are_normalized(text: str, origin: str | None) -> None:
    assert normalize_origin(text) == origin


def test_the_configured_origin_wins_then_the_environment() -> None:
    environ = {"DANCODES_PUBLIC_ORIGIN": "https://env.example"}
    assert configured_origin("https://conf.example", environ) == "https://conf.example"
    assert configured_origin("", environ) == "https://env.example"
    assert configured_origin("", {}) is None
    with pytest.raises(ConfigError, match=r"app\.public_origin"):
        configured_origin("conf.example", {})


def test_the_request_origin_comes_from_caddys_headers() -> None:
    assert request_origin({"host": "127.0.0.1:8080"}) == "http://127.0.0.1:8080"
    forwarded = {"host": "internal:1", "x-forwarded-host": "dan.example", "x-forwarded-proto": "https"}
    assert request_origin(forwarded) == "https://dan.example"
    assert request_origin({}) is None


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("GET", {}, False),
        ("HEAD", {"sec-fetch-site": "cross-site"}, False),
        ("OPTIONS", {"origin": "https://evil.example"}, False),
        ("POST", {"sec-fetch-site": "same-origin"}, False),
        ("POST", {"sec-fetch-site": "none"}, False),
        ("DELETE", {"origin": "https://dan.example"}, False),
        ("PUT", {"origin": "https://DAN.example:443"}, False),
        ("POST", {"sec-fetch-site": "cross-site"}, True),
        ("POST", {"sec-fetch-site": "same-site"}, True),
        ("POST", {"sec-fetch-site": "cross-site", "origin": "https://dan.example"}, True),
        ("POST", {"origin": "https://evil.example"}, True),
        ("POST", {"origin": "http://dan.example"}, True),
        ("POST", {"origin": "null"}, True),
        ("PATCH", {}, True),
    ],
)
def test_csrf_check(method: str, headers: dict[str, str], refused: bool) -> None:
    reason = csrf_refusal(method, headers, "https://dan.example")
    assert (reason is not None) == refused, reason


@pytest.mark.parametrize(
    ("method", "headers", "navigation"),
    [
        ("GET", {"sec-fetch-mode": "navigate"}, True),
        ("POST", {"sec-fetch-mode": "navigate"}, True),
        ("GET", {"sec-fetch-mode": "cors", "accept": "text/html"}, False),
        ("GET", {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, True),
        ("POST", {"accept": "text/html"}, False),
        ("GET", {"accept": "application/json"}, False),
        ("GET", {}, False),
    ],
)
def test_browser_navigation_or_api_call(method: str, headers: dict[str, str], navigation: bool) -> None:
    assert is_navigation(method, headers) is navigation


def test_header_map_joins_repeated_fields() -> None:
    headers = header_map([("Cookie", "a=1"), ("COOKIE", "b=2"), ("Accept", "x"), ("accept", "y")])
    assert headers == {"cookie": "a=1; b=2", "accept": "x, y"}


# -- the forward_auth decision ----------------------------------------------------------------------


def test_check_answers(tmp_path: Path) -> None:
    wall = make_wall(tmp_path, origin="https://dan.example")
    good = cookie_of(wall)
    assert wall.check({**good, "x-forwarded-method": "GET", "x-forwarded-uri": "/session"}).status == 204
    post = {**good, "x-forwarded-method": "POST", "x-forwarded-uri": "/session"}
    assert wall.check({**post, "sec-fetch-site": "same-origin"}).status == 204
    assert wall.check({**post, "origin": "https://dan.example"}).status == 204
    refused = wall.check({**post, "origin": "https://evil.example"})
    assert refused.status == 403
    assert json.loads(refused.body)["error"].startswith("cross-site request refused: ")

    navigate = {"sec-fetch-mode": "navigate", "x-forwarded-uri": "/session/ses_1?tab=2"}
    redirect = wall.check(navigate)
    assert redirect.status == 302
    assert dict(redirect.headers)["location"] == "/auth/login?next=%2Fsession%2Fses_1%3Ftab%3D2"
    api = wall.check({"x-forwarded-uri": "/session", "accept": "application/json"})
    assert api.status == 401
    assert dict(api.headers)["content-type"] == "application/json"
    assert "error" in json.loads(api.body)
    several = {"cookie": f"other=1; dancodes_auth=bogus; {good['cookie']}; x=2"}
    assert wall.check(several).status == 204
    assert wall.check({"cookie": "dancodes_auth_x=1; x=dancodes_auth"}).status == 401


# -- the routes -------------------------------------------------------------------------------------


stand_in_admin = Blueprint("admin", __name__, url_prefix="/admin")


@stand_in_admin.before_request
async def _guard() -> Response | None:
    return require_auth()


@stand_in_admin.get("/thing")
async def _read_thing() -> dict[str, Any]:
    return {"ok": True}


@stand_in_admin.post("/thing")
async def _change_thing() -> dict[str, Any]:
    return {"changed": True}


class Site:
    """A bare app with the wall; `client` sends TCP-like requests unless told it is the socket."""

    def __init__(self, app: Quart, wall: AuthWall, clock: Clock, monotonic: Clock) -> None:
        self.app = app
        self.wall = wall
        self.clock = clock
        self.monotonic = monotonic
        self.client: QuartTestClient = app.test_client()

    def via_caddy(self, forwarded_for: str) -> dict[str, str]:
        """The headers Caddy adds to a request it forwards: its proxy secret and the client's address."""
        return {"X-Dancodes-Proxy": self.wall.proxy_secret, "X-Forwarded-For": forwarded_for}

    async def login(self, password: str = PASSWORD, **kwargs: Any) -> Response:
        headers = {**SAME_ORIGIN, **kwargs.pop("headers", {})}
        form = {"password": password, **kwargs.pop("form", {})}
        return await self.client.post("/auth/login", form=form, headers=headers, scope_base=TCP, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.client.get(path, scope_base=kwargs.pop("scope_base", TCP), **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Response:
        return await self.client.post(path, scope_base=kwargs.pop("scope_base", TCP), **kwargs)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    clock, monotonic = Clock(T0), Clock(1000.0)
    wall = make_wall(tmp_path, clock=clock, monotonic=monotonic)
    app = QuartTrio("test-auth")
    app.request_class = BoundedRequest
    app.config[CONFIG_KEY] = wall
    app.register_blueprint(auth)
    app.register_blueprint(stand_in_admin)
    return Site(app, wall, clock, monotonic)


def set_cookie(response: Response) -> str:
    value: str = response.headers["Set-Cookie"]
    return value


async def test_login_page_is_phone_friendly(site: Site) -> None:
    page = await site.get("/auth/login?next=/session%3Fa%3D1%26b%3D%22x%22")
    assert page.status_code == 200
    html = await page.get_data(as_text=True)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1, maximum-scale=1">' in html
    assert "font-size: 16px" in html  # iOS zooms into inputs smaller than that
    assert "background: #000" in html
    assert "monospace" in html
    assert 'type="password"' in html
    assert 'type="submit"' in html
    assert '<input type="hidden" name="next" value="/session?a=1&amp;b=%22x%22">' in html
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    evil = await (await site.get("/auth/login?next=//evil.com")).get_data(as_text=True)
    assert 'name="next" value="/"' in evil


def test_login_page_escapes_the_error() -> None:
    html = login_page("/", "<script>")
    assert "&lt;script&gt;" in html
    assert "<script>" not in html


async def test_login_sets_the_cookie_and_goes_to_next(site: Site) -> None:
    response = await site.login(form={"next": "/session/ses_1?tab=2"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/session/ses_1?tab=2"
    cookie = set_cookie(response)
    name, _, rest = cookie.partition("=")
    assert name == "dancodes_auth"
    value = rest.split(";")[0]
    assert site.wall.verify({"cookie": f"dancodes_auth={value}"}) is Verdict.VALID
    flags = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/" in flags
    assert "max-age=2592000" in flags
    assert "secure" not in flags  # plain http here
    default = await site.login()
    assert default.headers["Location"] == "/"
    evil = await site.login(form={"next": "//evil.com"})
    assert evil.headers["Location"] == "/"


async def test_the_cookie_is_secure_on_an_https_origin(site: Site) -> None:
    site.wall.origin = "https://dan.example"
    response = await site.login(headers={"Origin": "https://dan.example", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303
    assert "secure" in [part.strip().lower() for part in set_cookie(response).split(";")]
    forwarded = await site.login(headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in set_cookie(forwarded)  # derived from Caddy's X-Forwarded-Proto


async def test_a_wrong_password_answers_401_with_the_page(site: Site) -> None:
    response = await site.login("wrong", form={"next": "/session"})
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    html = await response.get_data(as_text=True)
    assert "wrong password" in html
    assert 'name="next" value="/session"' in html


async def test_wrong_passwords_are_throttled_per_client(site: Site) -> None:
    attacker = site.via_caddy("10.0.0.1, 198.51.100.7")
    statuses = [(await site.login("wrong", headers=attacker)).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 401]  # three free, the fourth starts a 1 s lockout
    locked = await site.login(headers=attacker)  # even the right password is not looked at
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "1"
    assert "try again in 1 s" in await locked.get_data(as_text=True)
    # a spoofed first entry does not give a fresh bucket: the last entry is Caddy's
    spoofed = await site.login(headers=site.via_caddy("203.0.113.1, 198.51.100.7"))
    assert spoofed.status_code == 429
    other = await site.login("wrong", headers=site.via_caddy("198.51.100.8"))
    assert other.status_code == 401

    site.monotonic.advance(1.0)
    assert (await site.login("wrong", headers=attacker)).status_code == 401  # now 2 s
    second = await site.login(headers=attacker)
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "2"
    site.monotonic.advance(2.0)
    assert (await site.login(headers=attacker)).status_code == 303  # success resets
    assert (await site.login("wrong", headers=attacker)).status_code == 401
    assert site.wall.throttle.retry_after("198.51.100.7") == 0.0


async def test_a_client_that_bypasses_caddy_has_a_bucket_of_its_own(site: Site) -> None:
    """Anything on loopback can reach the app's port: its X-Forwarded-For is its own invention."""
    owner = site.via_caddy("127.0.0.1")  # the owner, through Caddy on the same machine
    guesses = [
        {"X-Forwarded-For": "127.0.0.1"},  # posing as the owner
        {"X-Forwarded-For": "198.51.100.1"},  # rotating addresses
        {"X-Forwarded-For": "198.51.100.2", "X-Dancodes-Proxy": "a-guessed-secret"},
        {"X-Forwarded-For": "198.51.100.3", "X-Dancodes-Proxy": site.wall.proxy_secret[:-1]},
    ]
    statuses = [(await site.login("wrong", headers=headers)).status_code for headers in guesses]
    assert statuses == [401, 401, 401, 401]
    assert (await site.login("wrong", headers={"X-Forwarded-For": "198.51.100.4"})).status_code == 429
    assert site.wall.throttle.retry_after("direct:127.0.0.1") == 1.0
    for forwarded in ("127.0.0.1", "198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"):
        assert site.wall.throttle.retry_after(forwarded) == 0.0
    assert (await site.login(headers=owner)).status_code == 303  # the owner was never locked out


async def test_the_control_socket_counts_as_local(site: Site) -> None:
    for _ in range(4):
        await site.client.post("/auth/login", form={"password": "wrong"})  # no server address
    assert site.wall.throttle.retry_after(LOCAL) == 1.0


def test_the_proxy_secret_is_random_and_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    wall = make_wall(tmp_path)
    assert len(wall.proxy_secret) >= 43  # 32 random bytes
    assert make_wall(tmp_path).proxy_secret != wall.proxy_secret  # a new one at every start
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert wall.from_proxy({"x-dancodes-proxy": wall.proxy_secret})
    assert not wall.from_proxy({"x-dancodes-proxy": wall.proxy_secret + "x"})
    assert not wall.from_proxy({"x-dancodes-proxy": "\udc80"})
    assert not wall.from_proxy({})  # no header: nothing to compare
    assert len(calls) == 3


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {},
    ],
)
async def test_login_from_another_site_is_refused(site: Site, headers: dict[str, str]) -> None:
    response = await site.client.post(
        "/auth/login", form={"password": PASSWORD}, headers=headers, scope_base=TCP
    )
    assert response.status_code == 403
    body = await response.get_json()
    assert body["error"].startswith("cross-site request refused: ")
    assert "Set-Cookie" not in response.headers


async def test_login_from_the_site_itself_passes(site: Site) -> None:
    by_origin = await site.client.post(
        "/auth/login", form={"password": PASSWORD}, headers={"Origin": ORIGIN}, scope_base=TCP
    )
    assert by_origin.status_code == 303
    on_socket = await site.client.post("/auth/login", form={"password": PASSWORD})  # no server: socket
    assert on_socket.status_code == 303


async def test_check_route(site: Site) -> None:
    cookie = cookie_of(site.wall)
    allowed = await site.get("/auth/check", headers={**cookie, "X-Forwarded-Uri": "/session"})
    assert allowed.status_code == 204
    api = await site.get("/auth/check", headers={"X-Forwarded-Uri": "/session"})
    assert api.status_code == 401
    assert "error" in await api.get_json()
    navigate = await site.get(
        "/auth/check", headers={"Sec-Fetch-Mode": "navigate", "X-Forwarded-Uri": "/s?q=1"}
    )
    assert navigate.status_code == 302
    assert navigate.headers["Location"] == "/auth/login?next=%2Fs%3Fq%3D1"
    html = await site.get("/auth/check", headers={"Accept": "text/html", "X-Forwarded-Uri": "/s"})
    assert html.status_code == 302
    forged = {**cookie, "X-Forwarded-Method": "POST", "Origin": "https://evil.example"}
    assert (await site.get("/auth/check", headers=forged)).status_code == 403
    same = {**cookie, "X-Forwarded-Method": "POST", "Sec-Fetch-Site": "same-origin"}
    assert (await site.get("/auth/check", headers=same)).status_code == 204
    tampered = {"Cookie": cookie["cookie"][:-6] + "AAAAAA"}
    assert (await site.get("/auth/check", headers=tampered)).status_code == 401


async def test_logout_ends_the_session_and_clears_the_cookie(site: Site) -> None:
    cookie = cookie_of(site.wall)
    other_device = cookie_of(site.wall)
    assert (await site.get("/admin/thing", headers=cookie)).status_code == 200
    response = await site.post("/auth/logout", headers=cookie)
    assert response.status_code == 303
    # a copy of the cookie (a stolen one) is worth nothing now, on every way in
    assert (await site.get("/admin/thing", headers=cookie)).status_code == 401
    assert (await site.get("/auth/check", headers=cookie)).status_code == 401
    assert not site.wall.verify(cookie)
    assert (await site.get("/admin/thing", headers=other_device)).status_code == 200  # only that one
    assert (await site.post("/auth/logout", headers=cookie)).status_code == 303  # again: still fine
    assert response.headers["Location"] == "/auth/login"
    cleared = set_cookie(response).lower()
    assert cleared.startswith("dancodes_auth=;")
    assert "max-age=0" in cleared
    assert "path=/" in cleared
    assert (await site.get("/auth/logout")).status_code == 405


async def test_admin_routes_need_the_cookie_and_the_origin_on_tcp(site: Site) -> None:
    cookie = cookie_of(site.wall)
    anonymous = await site.get("/admin/thing")
    assert anonymous.status_code == 401
    assert "error" in await anonymous.get_json()
    assert (await site.get("/admin/thing", headers=cookie)).status_code == 200
    forged = await site.post("/admin/thing", headers={**cookie, "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403
    assert "cross-site request refused" in (await forged.get_json())["error"]
    no_origin = await site.post("/admin/thing", headers=cookie)
    assert no_origin.status_code == 403
    assert (await site.post("/admin/thing", headers={**cookie, "Origin": ORIGIN})).status_code == 200
    # the control socket is the operator's: no cookie, no origin
    assert (await site.post("/admin/thing", scope_base={})).status_code == 200


async def test_no_password_or_cookie_value_in_the_logs(site: Site) -> None:
    guess = "hunter2-wrong-guess"
    with capture_logs() as logs:
        for _ in range(4):
            await site.login(guess, headers=site.via_caddy("198.51.100.7"))
        site.monotonic.advance(10)
        ok = await site.login(headers=site.via_caddy("198.51.100.7"))
        value = set_cookie(ok).split(";")[0].split("=", 1)[1]
        await site.get(
            "/auth/check", headers={"Cookie": f"dancodes_auth={value}", "X-Forwarded-Method": "PUT"}
        )
        await site.post("/admin/thing", headers={"Cookie": f"dancodes_auth={value}"})
    events = [entry["event"] for entry in logs]
    assert events.count("login_failed") == 4
    assert events.count("login_locked_out") == 1
    assert events.count("login_ok") == 1
    assert "csrf_refused" in events
    failed = [entry for entry in logs if entry["event"] == "login_failed"]
    assert [entry["failures"] for entry in failed] == [1, 2, 3, 4]
    assert all(entry["client"] == "198.51.100.7" for entry in failed)
    locked = next(entry for entry in logs if entry["event"] == "login_locked_out")
    assert locked["seconds"] == 1.0
    text = repr(logs)
    for secret in (guess, PASSWORD, value, SECRET, site.wall.proxy_secret):
        assert secret not in text


# -- the fast forward_auth responder ----------------------------------------------------------------


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # a short path: a unix socket's path is limited to 107 bytes, pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="dc-auth-") as name:
        yield Path(name)


@pytest.fixture
async def responder(socket_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[AuthWall, Path]]:
    wall = make_wall(tmp_path, origin="https://dan.example")
    path = socket_dir / "auth.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_forward_auth, wall, path)
        yield wall, path
        nursery.cancel_scope.cancel()


class Conn:
    """A raw HTTP/1.1 connection to the responder."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            assert data, "connection closed before a response"
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = header_map(tuple(line.split(": ", 1)) for line in lines[1:])  # type: ignore[misc]
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += await self.stream.receive_some(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    async def closed(self) -> bool:
        with trio.fail_after(5):
            return await self.stream.receive_some(65536) == b""


def request(
    headers: dict[str, str] | None = None, *, method: str = "GET", target: str = "/auth/check"
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1:8080", "User-Agent: Go-http-client/1.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connect(path: Path) -> Conn:
    return Conn(await trio.open_unix_socket(str(path)))


async def test_responder_answers_like_the_check_route(responder: tuple[AuthWall, Path]) -> None:
    wall, path = responder
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    conn = await connect(path)
    cookie = {"Cookie": f"dancodes_auth={wall.issue()}", "X-Forwarded-Method": "GET"}
    for _ in range(3):  # kept alive
        await conn.send(request(cookie))
        status, headers, body = await conn.response()
        assert (status, body) == (204, b"")
        assert "content-length" not in headers
    await conn.send(request({"Sec-Fetch-Mode": "navigate", "X-Forwarded-Uri": "/s?q=1"}))
    status, headers, _ = await conn.response()
    assert status == 302
    assert headers["location"] == "/auth/login?next=%2Fs%3Fq%3D1"
    await conn.send(request({"Accept": "application/json"}))
    status, headers, body = await conn.response()
    assert status == 401
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "not signed in: log in at /auth/login"}
    forged = {**cookie, "X-Forwarded-Method": "POST", "Origin": "https://evil.example"}
    await conn.send(request(forged))
    status, _, body = await conn.response()
    assert status == 403
    assert json.loads(body)["error"].startswith("cross-site request refused")
    ok = {**cookie, "X-Forwarded-Method": "DELETE", "Origin": "https://dan.example"}
    await conn.send(request(ok) + request(ok))  # pipelined
    assert (await conn.response())[0] == 204
    assert (await conn.response())[0] == 204
    await conn.send(request(method="HEAD"))
    status, headers, body = await conn.response(head_only=True)
    assert status == 401
    assert int(headers["content-length"]) > 0
    await conn.send(request(target="/other"))
    assert (await conn.response())[0] == 404
    await conn.send(request(method="POST"))
    assert (await conn.response())[0] == 405
    await conn.send(request({**cookie, "Connection": "close"}))
    status, headers, _ = await conn.response()
    assert status == 204
    assert headers["connection"] == "close"
    assert await conn.closed()


async def test_responder_accepts_a_request_in_pieces(responder: tuple[AuthWall, Path]) -> None:
    wall, path = responder
    conn = await connect(path)
    data = request({"Cookie": f"dancodes_auth={wall.issue()}"})
    for i in range(0, len(data), 7):
        await conn.send(data[i : i + 7])
        await trio.sleep(0)
    assert (await conn.response())[0] == 204


@pytest.mark.parametrize(
    "data",
    [
        b"GET /auth/check\r\n\r\n",
        b"GET /auth/check HTTP/2\r\n\r\n",
        b"GET  /auth/check HTTP/1.1\r\n\r\n",
        b"GET /auth/check HTTP/1.1\r\nNo-Colon\r\n\r\n",
        b"GET /auth/check HTTP/1.1\r\nBad Name : x\r\n\r\n",
        b"GET /auth/check HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET /auth/check HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
        b"GET /auth/check HTTP/1.1\r\nA: b\rC: d\r\n\r\n",
        b"GET /auth/check HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET /auth/check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
async def test_responder_refuses_what_caddy_never_sends(
    responder: tuple[AuthWall, Path], data: bytes
) -> None:
    _, path = responder
    conn = await connect(path)
    await conn.send(data)
    status, headers, _ = await conn.response()
    assert status == 400
    assert headers["connection"] == "close"
    assert await conn.closed()


async def test_responder_refuses_an_oversized_head(responder: tuple[AuthWall, Path]) -> None:
    _, path = responder
    conn = await connect(path)
    await conn.send(b"GET /auth/check HTTP/1.1\r\n" + b"X-Filler: " + b"a" * 20000 + b"\r\n")
    assert (await conn.response())[0] == 431
    assert await conn.closed()


async def test_responder_survives_a_client_that_hangs_up(responder: tuple[AuthWall, Path]) -> None:
    wall, path = responder
    for _ in range(3):
        conn = await connect(path)
        await conn.send(b"GET /auth/ch")
        await conn.stream.aclose()
    conn = await connect(path)
    await conn.send(request({"Cookie": f"dancodes_auth={wall.issue()}"}))
    assert (await conn.response())[0] == 204


async def test_responder_closes_idle_connections(
    socket_dir: Path, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    wall = make_wall(tmp_path)
    path = socket_dir / "auth.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_forward_auth, wall, path)
        conn = await connect(path)
        await conn.send(request({"Cookie": f"dancodes_auth={wall.issue()}"}))
        assert (await conn.response())[0] == 204
        before = trio.current_time()
        with trio.fail_after(1000):
            assert await conn.stream.receive_some(65536) == b""
        assert trio.current_time() - before >= 300  # idle for five minutes, then let go
        nursery.cancel_scope.cancel()


async def test_responder_removes_its_socket(socket_dir: Path, tmp_path: Path) -> None:
    path = socket_dir / "auth.sock"
    path.write_text("stale")  # a daemon that died left it
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_forward_auth, make_wall(tmp_path), path)
        assert path.is_socket()
        nursery.cancel_scope.cancel()
    assert not path.exists()


# -- server-side sessions ---------------------------------------------------------------------------


def test_a_session_is_kept_as_a_hash_in_a_private_file(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = SessionStore(tmp_path, max_age=30 * DAY, clock=clock)
    session_id = store.create("Mozilla/5.0 (iPhone)\x1b[31m")
    assert is_session_id(session_id)
    path = tmp_path / SESSIONS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert session_id not in text
    recorded = json.loads(text)["sessions"]
    assert list(recorded) == [session_hash(session_id)]
    assert recorded[session_hash(session_id)] == {
        "created": T0,
        "last_seen": T0,
        "user_agent": "Mozilla/5.0 (iPhone)?[31m",  # no control characters in a listing
    }
    assert [p.name for p in tmp_path.iterdir()] == [SESSIONS_FILE]  # no temp file left behind
    # a restart reads it back: the session survives, and so does its ending
    again = SessionStore(tmp_path, max_age=30 * DAY, clock=clock)
    assert again.alive(session_id)
    assert not again.alive(new_session_id())
    assert again.end(session_id)
    assert not SessionStore(tmp_path, max_age=30 * DAY, clock=clock).alive(session_id)


def test_sessions_end_on_their_max_age_and_the_oldest_go_first(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = SessionStore(tmp_path, max_age=10 * DAY, clock=clock, max_sessions=3)
    first = store.create("a")
    clock.advance(1)
    ids = [store.create(ua) for ua in "bc"]
    clock.advance(1)
    assert store.alive(first)  # seen now: the most recent
    clock.advance(1)
    newest = store.create("d")  # four: the least recently seen (b) goes
    assert [store.alive(i) for i in (first, *ids, newest)] == [True, False, True, True]
    clock.advance(10 * DAY)
    assert not store.alive(newest)
    assert store.listing() == []


def test_last_seen_is_written_now_and_then_not_on_every_check(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = SessionStore(tmp_path, max_age=30 * DAY, clock=clock, flush_every=300)
    session_id = store.create("ua")
    path = tmp_path / SESSIONS_FILE

    def on_disk() -> float:
        seen: float = json.loads(path.read_text())["sessions"][session_hash(session_id)]["last_seen"]
        return seen

    clock.advance(100)
    assert store.alive(session_id)
    assert on_disk() == T0  # in memory only
    assert store.listing()[0].last_seen == T0 + 100
    clock.advance(200)
    assert store.alive(session_id)
    assert on_disk() == T0 + 300


def test_ending_every_session_and_one_by_its_listed_id(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, max_age=30 * DAY, clock=Clock(T0))
    ids = [store.create(f"device {i}") for i in range(3)]
    handles = [s.id for s in store.listing()]
    assert len(handles) == 3
    assert all(len(h) == 16 and all(c in "0123456789abcdef" for c in h) for h in handles)
    assert not any(i in repr(store.listing()) for i in ids)  # a listing never shows a session id
    assert store.end_handle(handles[0])
    assert not store.end_handle(handles[0])
    assert sum(store.alive(i) for i in ids) == 2
    assert store.end_all() == 2
    assert not any(store.alive(i) for i in ids)
    assert json.loads((tmp_path / SESSIONS_FILE).read_text()) == {"sessions": {}}


def test_a_damaged_sessions_file_signs_everyone_out(tmp_path: Path) -> None:
    (tmp_path / SESSIONS_FILE).write_text('{"sessions": {"x": {"created": "yesterday"}}}')
    with capture_logs() as logs:
        store = SessionStore(tmp_path, max_age=30 * DAY, clock=Clock(T0))
    assert len(store) == 0
    assert [entry["event"] for entry in logs] == ["sessions_unreadable"]


def test_a_session_that_cannot_be_saved_is_not_created(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "gone", max_age=30 * DAY, clock=Clock(T0))
    with pytest.raises(DataDirError, match=r"^cannot write .*auth-sessions\.json: "):
        store.create("ua")
    assert len(store) == 0


async def test_login_starts_a_session_named_by_the_cookie(site: Site) -> None:
    response = await site.login(headers={"User-Agent": "Phone/1.0"})
    value = set_cookie(response).split(";")[0].split("=", 1)[1]
    session_id = value.split(".")[0]
    assert [(s.user_agent, s.id) for s in site.wall.sessions.listing()] == [
        ("Phone/1.0", session_hash(session_id)[:16])
    ]
    cookie = {"Cookie": f"dancodes_auth={value}"}
    assert (await site.get("/admin/thing", headers=cookie)).status_code == 200
    site.wall.sessions.end_all()  # sign out everywhere: the signature is still good, the session gone
    assert site.wall.signer.verify(value) is Verdict.VALID
    assert (await site.get("/admin/thing", headers=cookie)).status_code == 401
    forged = site.wall.signer.issue(new_session_id())  # signed with the key, but no session
    assert (await site.get("/admin/thing", headers={"Cookie": f"dancodes_auth={forged}"})).status_code == 401


# -- request bodies ---------------------------------------------------------------------------------


async def test_a_body_is_refused_past_its_limit_however_it_is_read() -> None:
    whole = BoundedBody(None, 100)  # chunked: no length declared
    whole.append(b"x" * 60)
    whole.append(b"x" * 60)
    with pytest.raises(RequestEntityTooLarge):
        await whole
    streamed = BoundedBody(None, 100)
    pieces: list[bytes] = []
    for _ in range(3):  # read piece by piece, as the multipart parser does: each read empties it
        streamed.append(b"y" * 40)
        if len(pieces) < 2:
            pieces.append(await streamed.__anext__())
    with pytest.raises(RequestEntityTooLarge):
        await streamed.__anext__()
    assert pieces == [b"y" * 40, b"y" * 40]
    assert not streamed.received_all
    declared = BoundedBody(101, 100)  # a declared length says it at once
    with pytest.raises(RequestEntityTooLarge):
        await declared


async def test_a_reader_waiting_for_more_gets_the_refusal_not_an_early_end() -> None:
    body = BoundedBody(None, 100)
    outcome: list[object] = []

    async def read() -> None:
        try:
            async for piece in body:
                outcome.append(piece)
        except RequestEntityTooLarge as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        body.append(b"z" * 150)
    assert len(outcome) == 1
    assert isinstance(outcome[0], RequestEntityTooLarge)


async def test_the_rest_of_an_unread_body_is_drained_within_bounds(autojump_clock: trio.abc.Clock) -> None:
    """An early answer (413, 403, 429) first takes and drops the rest of the body, so closing the
    connection sends no reset that would destroy the answer; a body too big or too slow is given up."""
    finished = BoundedBody(None, 100)
    finished.append(b"x" * 10)

    async def client_sends_the_rest() -> None:
        for _ in range(5):
            await trio.lowlevel.checkpoint()
            finished.append(b"y" * 50)  # past the limit: dropped as it comes
        finished.set_complete()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client_sends_the_rest)
        assert await finished.drain(max_bytes=1000, seconds=10)
    assert not finished.received_all  # dropped, not kept: no route can read it

    endless = BoundedBody(None, 100)

    async def client_sends_too_much() -> None:
        while True:
            await trio.lowlevel.checkpoint()
            endless.append(b"z" * 400)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client_sends_too_much)
        assert not await endless.drain(max_bytes=1000, seconds=10)
        nursery.cancel_scope.cancel()

    slow = BoundedBody(None, 100)
    assert not await slow.drain(max_bytes=1000, seconds=2)  # the client sends nothing more (virtual time)


async def test_a_route_lowers_the_limit_and_a_complete_body_is_noticed() -> None:
    body = BoundedBody(None, 1000)
    body.append(b"a" * 50)
    body.limit(2000)  # never raised
    body.limit(40)
    with pytest.raises(RequestEntityTooLarge):
        await body
    small = BoundedBody(None, 1000)
    small.append(b"ok")
    small.set_complete()
    assert small.received_all
    assert await small == b"ok"


async def test_a_chunked_multipart_login_is_refused_before_it_is_spooled(site: Site) -> None:
    spooled: list[int] = []  # bytes written to each file part the parser opens

    class Recording(tempfile.SpooledTemporaryFile[bytes]):
        def write(self, data: Any) -> int:
            spooled.append(len(data))
            return super().write(data)

    boundary = "dancodes-test"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="password"; filename="p.bin"\r\n\r\n'
    ).encode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(werkzeug.formparser, "SpooledTemporaryFile", Recording)
        connection = site.client.request(
            "/auth/login",
            method="POST",
            headers={
                **SAME_ORIGIN,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Transfer-Encoding": "chunked",
            },
            scope_base=TCP,
        )
        # the app answers without the rest (the guard only turns a hang into a failure)
        with trio.fail_after(10):
            async with connection as conn:
                await conn.send(head)
                for _ in range(16):  # 16 KB in 1 KB pieces, no length declared, and no end
                    await conn.send(b"\0" * 1024)
        response = await conn.as_response()
        assert response.status_code == 413
        assert "at most 8192 bytes" in (await response.get_json())["error"]
    assert sum(spooled) < 8192  # what the parser kept: less than the limit, never the rest
    assert site.wall.throttle.retry_after("direct:127.0.0.1") == 0.0  # too big is not a wrong password


async def test_a_locked_out_client_is_answered_before_its_body_is_read(site: Site) -> None:
    attacker = site.via_caddy("198.51.100.9")
    for _ in range(4):
        await site.login("wrong", headers=attacker)
    connection = site.client.request(
        "/auth/login?next=/session",
        method="POST",
        headers={**SAME_ORIGIN, **attacker, "Content-Type": "application/x-www-form-urlencoded"},
        scope_base=TCP,
    )
    with trio.fail_after(10):  # the answer cannot wait for the body: it never ends
        async with connection as conn:
            await conn.send(b"password=")
    response = await conn.as_response()
    assert response.status_code == 429
    assert 'name="next" value="/session"' in await response.get_data(as_text=True)


# -- what the wall may change in the config ---------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "gc.idle_days",
        "gc.new_worktree_grace_minutes",
        "orphans.kill_after_minutes",
        "services.opencode.restart.backoff_max",
        "services.opencode.restart.policy",
        "services.caddy.probe.interval",
        "services.opencode.probe.start_timeout",
        "services.opencode.stop_grace",
    ],
)
def test_tunables_may_change_through_the_wall(key: str) -> None:
    assert tunable_through_wall(key, load_config().config)


@pytest.mark.parametrize(
    "key",
    [
        "services.opencode.argv",
        "services.opencode.argv.0",
        "services.opencode.env",
        "services.opencode.env.OPENCODE_CONFIG",
        "services.opencode.cwd",
        "services.opencode.enabled",
        "services.opencode.after",
        "services.opencode.stop_signal",
        "services.opencode.dispose_url",
        "services.opencode.probe.url",
        "services.caddy.probe.unix_socket",
        "services.opencode.probe",  # a whole table, url included
        "services.opencode.restart",
        "services.evil.restart.policy",  # a new service
        "services.evil.argv",
        "services",
        "gc",
        "gc.nonsense",
        "git.remote_url",
        "git.github_api",
        "ports.public",
        "app.public_origin",
        "auth.lockout_max",
        "daemon.health_requires",
        "data_dir",
    ],
)
def test_what_runs_and_where_requests_go_are_the_control_sockets(key: str) -> None:
    assert not tunable_through_wall(key, load_config().config)
    assert wall_refusal(key).startswith(f"config: {key}: cannot be changed through the web")
    assert "dancodes-ctl config set" in wall_refusal(key)


def test_tunable_tables_hold_only_numbers_switches_and_choices() -> None:
    """A string (a path, a URL, a command) added to gc or orphans would be settable by a cookie."""
    tables: list[type[msgspec.Struct]] = [*TUNABLE_TABLES.values(), RestartPolicy]
    tunable = (
        msgspec.inspect.FloatType,
        msgspec.inspect.IntType,
        msgspec.inspect.BoolType,
        msgspec.inspect.LiteralType,
    )
    for table in tables:
        for field in msgspec.structs.fields(table):
            kind = msgspec.inspect.type_info(field.type)
            kinds = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
            # an optional number ("unset: the default") is still a number
            kinds = tuple(k for k in kinds if not isinstance(k, msgspec.inspect.NoneType))
            assert kinds, (table.__name__, field.name, kind)
            assert all(isinstance(k, tunable) for k in kinds), (table.__name__, field.name, kind)
