"""Web push: the checks on what a browser sends, the decisions (what a status change says, whether the
app is visible), the store of subscriptions, the sealing child, and the whole path against the real
stack: a scripted chat ends, a loopback push service gets the push, and the test decrypts it with the
subscription's keys and verifies the VAPID JWT (tests/pushservice.py, written from the RFCs).
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trio

from supervisor.chats import Transition
from supervisor.config import load_config
from supervisor.errors import (
    ConfigError,
    DataDirError,
    InvalidSubscription,
    PushUnavailable,
    TooManySubscriptions,
    UnknownSubscription,
)
from supervisor.push import checks, seal, sender
from supervisor.push.device import clean_label, device_name
from supervisor.push.notices import MAX_PAYLOAD, kind_of, notice_for
from supervisor.push.notifier import DEFAULT_SUBJECT, is_chat, vapid_subject
from supervisor.push.presence import MAX_CLIENTS, Beat, Presence, app_visible
from supervisor.push.subscriptions import Delivery, SubscriptionStore, subscription_id
from supervisor.reaper import Reaper
from tests.conftest import ONLY_TEST_SERVICES, launch_daemon
from tests.pushservice import BrowserSubscription, PushService, b64url, check_vapid, unb64url
from tests.stack import Stack, running_stack
from tests.test_chats import prompt

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "Traceback" not in message


# ------------------------------------------------------------------------------- what a browser sends


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://fcm.googleapis.com/fcm/send/abc:def",
        "https://web.push.apple.com/QGx1",
        "http://127.0.0.1:9999/push",
        "http://127.9.9.9/push",
        "http://localhost:8000/push",
    ],
)
def test_https_endpoints_and_http_on_loopback_are_taken(endpoint: str) -> None:
    assert checks.check_endpoint(endpoint) == endpoint


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("http://push.example.com/x", "must be https (http only on loopback)"),
        ("http://10.0.0.1/x", "must be https (http only on loopback)"),
        ("http://127.0.0.1.example.com/x", "must be https (http only on loopback)"),
        ("ftp://127.0.0.1/x", "must be https (http only on loopback)"),
        ("javascript:alert(1)", "not a push service's URL"),
        ("not a url at all", "not a push service's URL"),
        ("https://user:pw@push.example.com/x", "not a push service's URL"),
        ("https://push.example.com:notaport/x", "not a URL"),
        ("https://[::1]/x", "IPv6"),
        ("https://push.example.com/" + "x" * 3000, "longer than 2048"),
    ],
)
def test_other_endpoints_are_refused_in_one_line(endpoint: str, says: str) -> None:
    with pytest.raises(InvalidSubscription) as caught:
        checks.check_endpoint(endpoint)
    assert says in str(caught.value)
    assert str(caught.value).startswith("endpoint: ")
    assert one_line(str(caught.value))
    assert len(str(caught.value)) < 200


def test_keys_must_be_a_p256_point_and_a_16_byte_secret() -> None:
    browser = BrowserSubscription("https://push.example.com/x")
    keys = browser.to_json()["keys"]
    assert checks.check_p256dh(keys["p256dh"]) == browser.public
    assert checks.check_p256dh(keys["p256dh"] + "==") == browser.public  # padded base64url too
    assert checks.check_auth(keys["auth"]) == browser.auth
    off_curve = bytearray(browser.public)
    off_curve[-1] ^= 1
    compressed = bytes([2]) + browser.public[1:33]
    for bad in [
        "",
        "AAAA",
        "!!!!",
        b64url(bytes(off_curve)),
        b64url(compressed),
        b64url(b"\x04" + b"\xff" * 64),
    ]:
        with pytest.raises(InvalidSubscription, match=r"^keys\.p256dh: not a P-256 public key"):
            checks.check_p256dh(bad)
    for bad in ["", b64url(b"x" * 15), b64url(b"x" * 17), "a+b/" * 6]:
        with pytest.raises(InvalidSubscription, match=r"^keys\.auth: not a 16-byte secret"):
            checks.check_auth(bad)


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        (IPHONE, "iPhone · Safari"),
        (PIXEL, "Pixel 8 · Chrome"),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
            "Android · Chrome",
        ),
        ("Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", "Android · Firefox"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 CriOS/124 "
            "Mobile/15E148 Safari/604.1",
            "iPhone · Chrome",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "Version/17.4 Safari/605.1.15",
            "Mac · Safari",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36 "
            "Edg/124.0",
            "Windows · Edge",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/124.0 Safari/537.36",
            "Linux · Chrome",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 SamsungBrowser/24.0 "
            "Chrome/117.0 Mobile Safari/537.36",
            "SM-S918B · Samsung Internet",
        ),
        ("python-httpx/0.28.1", "unknown device"),
        ("", "unknown device"),
    ],
)
def test_a_device_is_named_from_its_user_agent(user_agent: str, name: str) -> None:
    assert device_name(user_agent) == name


def test_a_label_is_one_short_line() -> None:
    assert clean_label("  my\nphone\x00 \u2028 ") == "my phone"
    assert len(clean_label("x" * 500)) == 60


# ------------------------------------------------------------------------------- the decisions


def test_the_app_is_visible_while_a_fresh_beat_says_so() -> None:
    bound = 45.0
    assert not app_visible({}, 1000.0, bound)
    assert app_visible({"a": Beat(True, 1000.0)}, 1000.0, bound)
    assert app_visible({"a": Beat(True, 955.0)}, 1000.0, bound)  # exactly the bound: still visible
    assert not app_visible({"a": Beat(True, 954.9)}, 1000.0, bound)  # went silent: the phone is away
    assert not app_visible({"a": Beat(False, 1000.0)}, 1000.0, bound)  # it said it went to the back
    assert app_visible({"a": Beat(False, 999.0), "b": Beat(True, 990.0)}, 1000.0, bound)  # any device
    assert not app_visible({"a": Beat(True, 1001.0)}, 1000.0, bound)  # from the future: not trusted


def test_presence_keeps_each_apps_last_word_and_a_bounded_number() -> None:
    now = [100.0]
    presence = Presence(clock=lambda: now[0])
    presence.beat("tab-one-1", True)
    assert presence.visible(45)
    presence.beat("tab-one-1", False)
    assert not presence.visible(45)
    presence.beat("tab-two-2", True)
    now[0] += 46
    assert not presence.visible(45)
    for n in range(MAX_CLIENTS + 10):
        presence.beat(f"client-{n:04d}", False)
    assert len(presence.beats) == MAX_CLIENTS
    assert "client-0009" not in presence.beats
    assert f"client-{MAX_CLIENTS + 9:04d}" in presence.beats


def change(before: str, after: str, error: str | None = None) -> Transition:
    return Transition("ses_1", "/wt", before, after, error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ("busy", "idle", "done"),
        ("retry", "idle", "done"),
        ("waiting", "idle", "done"),
        ("busy", "error", "failed"),
        ("idle", "error", "failed"),
        ("busy", "waiting", "waiting"),
        ("retry", "waiting", "waiting"),
        ("idle", "busy", None),
        ("busy", "retry", None),
        ("error", "busy", None),
        ("error", "idle", None),  # an error cleared is no news
        ("waiting", "busy", None),  # answered: the turn goes on
    ],
)
def test_which_status_changes_are_pushed(before: str, after: str, kind: str | None) -> None:
    assert kind_of(change(before, after)) == kind


def test_notices_say_what_happened() -> None:
    done = notice_for("done", "ses_1", "Fix the tests", stat="2 files changed, +3 -1")
    assert json.loads(done.payload()) == {
        "title": "Fix the tests",
        "body": "done · 2 files changed, +3 -1",
        "tag": "ses_1",
        "url": "/#chat=ses_1",
    }
    assert notice_for("done", "ses_1", "t").body == "done"
    assert notice_for("failed", "ses_1", "t", error="the model refused").body == "failed: the model refused"
    assert notice_for("waiting", "ses_1", "").title == "dancodes chat"
    assert "waiting for you" in notice_for("waiting", "ses_1", "t").body


def test_a_long_notice_fits_a_push() -> None:
    huge = "ошибка \x07\x1b[31m " * 2000  # multi-byte and control characters
    notice = notice_for("failed", "ses_1", "標題" * 500, error=huge)
    payload = notice.payload()
    assert len(payload) <= MAX_PAYLOAD
    body = json.loads(payload)
    assert body["body"].startswith("failed: ошибка")
    assert body["body"].endswith("…")
    assert "\x1b" not in body["body"]
    assert "\x07" not in body["body"]
    assert len(body["title"]) <= 120


def test_only_a_chat_in_its_own_worktree_is_pushed() -> None:
    worktrees = Path("/vol/projects/worktrees")
    sid = "ses_0123456789abcdefABCDEF0123"
    own = str(worktrees / f"acme__app__{sid}")
    assert is_chat(own, sid, worktrees)
    assert not is_chat(own, "ses_subagent000000000000000000", worktrees)  # a subagent in that worktree
    assert not is_chat("/vol/projects/repos/acme__app", sid, worktrees)  # not (yet) in a worktree
    assert not is_chat(str(worktrees / "junk"), sid, worktrees)
    assert not is_chat(str(worktrees / f"acme__app__{sid}" / "sub"), sid, worktrees)
    assert not is_chat("", sid, worktrees)


def test_the_vapid_subject() -> None:
    assert vapid_subject("mailto:me@example.com", "https://x.example") == "mailto:me@example.com"
    assert vapid_subject("", "https://dancodes.fly.dev") == "https://dancodes.fly.dev"
    assert vapid_subject("", "https://dancodes.example:8443") == "https://dancodes.example"
    assert vapid_subject("", "http://127.0.0.1:8080") == DEFAULT_SUBJECT
    assert vapid_subject("", None) == DEFAULT_SUBJECT


def test_what_push_services_answer() -> None:
    assert sender.judge(201, "") == (True, False, "201 accepted")
    assert sender.judge(410, "unsubscribed\n") == (False, True, "410 gone: unsubscribed: unsubscribed")
    assert sender.judge(404, "")[1] is True
    ok, gone, message = sender.judge(403, "bad\njwt " * 100)
    assert (ok, gone) == (False, False)
    assert one_line(message)
    assert len(message) < 260


# ------------------------------------------------------------------------------- the subscriptions kept


def keys_of(browser: BrowserSubscription) -> tuple[str, str]:
    keys = browser.to_json()["keys"]
    return keys["p256dh"], keys["auth"]


def test_subscriptions_are_kept_private_and_survive_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "push"
    store = SubscriptionStore(directory, cap=lambda: 3, clock=lambda: 1000.0)
    phone = BrowserSubscription("https://push.example.com/phone")
    sub, created = store.add(phone.endpoint, *keys_of(phone), "iPhone · Safari")
    assert created
    assert sub.id == subscription_id(phone.endpoint)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "subscriptions.json").stat().st_mode) == 0o600
    # the same browser again: replaced, not added
    again, created = store.add(phone.endpoint, *keys_of(BrowserSubscription(phone.endpoint)), "renamed")
    assert not created
    assert again.id == sub.id
    assert again.device == "renamed"
    assert len(store) == 1
    store.record(sub.id, Delivery(at=1001.0, status=201, ok=True, message="201 accepted"))
    reopened = SubscriptionStore(directory, cap=lambda: 3)
    [kept] = reopened.listing()
    assert kept.device == "renamed"
    assert kept.created == 1000.0
    assert kept.last_delivery is not None
    assert kept.last_delivery.status == 201
    assert list(directory.iterdir()) == [directory / "subscriptions.json"]  # no temporary file left


def test_the_cap_and_unknown_ids_are_refused(tmp_path: Path) -> None:
    store = SubscriptionStore(tmp_path / "push", cap=lambda: 2)
    for n in range(2):
        store.add(f"https://push.example.com/{n}", *keys_of(BrowserSubscription("x")), f"d{n}")
    with pytest.raises(TooManySubscriptions, match="already 2 push subscriptions"):
        store.add("https://push.example.com/third", *keys_of(BrowserSubscription("x")), "d")
    # the same endpoint again is a replacement, not one more
    store.add("https://push.example.com/0", *keys_of(BrowserSubscription("x")), "d0 again")
    with pytest.raises(UnknownSubscription, match="no push subscription 'feedfacefeedface'"):
        store.remove("feedfacefeedface")
    gone = store.remove(subscription_id("https://push.example.com/1"))
    assert gone.device == "d1"
    assert len(store) == 1
    store.record(store.listing()[0].id, Delivery(at=1.0, status=410, ok=False, message="gone"), drop=True)
    assert len(SubscriptionStore(tmp_path / "push", cap=lambda: 2)) == 0


def test_a_subscription_that_cannot_be_written_is_not_kept(tmp_path: Path) -> None:
    (tmp_path / "push").write_text("a file where the directory should be")
    store = SubscriptionStore(tmp_path / "push", cap=lambda: 2)
    with pytest.raises(DataDirError, match=r"^cannot write .*subscriptions\.json: "):
        store.add("https://push.example.com/0", *keys_of(BrowserSubscription("x")), "d")
    assert len(store) == 0


@pytest.mark.parametrize("damage", [b"{not json", b'{"subscriptions": [{"id": 3}]}', b"\xff\xfe"])
def test_a_damaged_file_is_one_log_line_and_set_aside(tmp_path: Path, damage: bytes) -> None:
    directory = tmp_path / "push"
    directory.mkdir()
    (directory / "subscriptions.json").write_bytes(damage)
    with structlog.testing.capture_logs() as logs:
        store = SubscriptionStore(directory, cap=lambda: 2)
    assert len(store) == 0
    [line] = logs
    assert line["event"] == "push_subscriptions_unreadable"
    assert line["log_level"] == "error"
    assert (directory / "subscriptions.json.damaged").read_bytes() == damage
    store.add("https://push.example.com/0", *keys_of(BrowserSubscription("x")), "d")  # works again
    assert len(SubscriptionStore(directory, cap=lambda: 2)) == 1


# ------------------------------------------------------------------------------- the sealing child


async def test_the_child_makes_the_keys_once_and_seals_for_each_browser(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    phone, laptop = BrowserSubscription("http://127.0.0.1:1/a"), BrowserSubscription("https://p.example/b")
    reaper = Reaper()
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        made = await sender.run_seal(reaper, secrets, "keys")
        again = await sender.run_seal(reaper, secrets, "keys")
        store = SubscriptionStore(tmp_path / "push", cap=lambda: 5)
        targets = [store.add(b.endpoint, *keys_of(b), "d")[0] for b in (phone, laptop)]
        expires = int(time.time()) + 3600
        job = sender.seal_job(b'{"title": "t"}', targets, subject="mailto:me@example.com", expires=expires)
        sealed = await sender.run_seal(reaper, secrets, "seal", job)
        nursery.cancel_scope.cancel()
    public = made["public_key"]
    assert again["public_key"] == public == sealed["public_key"]
    assert checks.check_p256dh(public)
    assert (secrets / seal.PUBLIC_KEY_FILE).read_text().strip() == public
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets / seal.PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert (secrets / seal.PRIVATE_KEY_FILE).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    by_id = {item["id"]: item for item in sealed["sealed"]}
    for browser, target in zip((phone, laptop), targets, strict=True):
        item = by_id[target.id]
        assert browser.decrypt(unb64url(item["body"])) == b'{"title": "t"}'
        claims = check_vapid(item["authorization"], public)
        assert claims == {
            "aud": checks.origin_of(browser.endpoint),
            "exp": expires,
            "sub": "mailto:me@example.com",
        }
    # a fresh sender key and salt for each push: the same text never looks the same twice
    assert by_id[targets[0].id]["body"][:150] != by_id[targets[1].id]["body"][:150]


async def test_a_broken_key_file_fails_in_one_line_without_the_key(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    garbage = "-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----\n"
    (secrets / seal.PRIVATE_KEY_FILE).write_text(garbage)
    reaper = Reaper()
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        with pytest.raises(PushUnavailable) as caught:
            await sender.run_seal(reaper, secrets, "keys")
        nursery.cancel_scope.cancel()
    message = str(caught.value)
    assert message.startswith("the push sealer failed: ")
    assert one_line(message)
    assert "TOPSECRET" not in message
    assert (secrets / seal.PRIVATE_KEY_FILE).read_text() == garbage  # never replaced behind the user's back


@pytest.mark.parametrize(
    "subject", ["http://dancodes.example", "me@example.com", "mailto:nobody", "https://x/y"]
)
def test_a_subject_apple_would_refuse_is_a_config_error(tmp_path: Path, subject: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[push]\nsubject = {json.dumps(subject)}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "push.subject"


# ------------------------------------------------------------------------------- the daemon alone


def test_a_damaged_subscriptions_file_does_not_stop_the_daemon(tmp_path: Path) -> None:
    data = tmp_path / "daemon" / "data"
    (data / "push").mkdir(parents=True)
    (data / "push" / "subscriptions.json").write_text('{"subscriptions": [{"endpoint": ')
    daemon = launch_daemon(tmp_path / "daemon", ONLY_TEST_SERVICES + "[push]\nmax_subscriptions = 1\n")
    try:
        with daemon.client() as admin:
            listed = admin.get("/admin/push/subscriptions")
            assert listed.status_code == 200, listed.text
            assert listed.json()["subscriptions"] == []
            assert listed.json()["max_subscriptions"] == 1
            unreadable = [e for e in daemon.events() if e.get("event") == "push_subscriptions_unreadable"]
            assert len(unreadable) == 1
            assert unreadable[0]["kept_as"].endswith("subscriptions.json.damaged")
            first = BrowserSubscription("https://push.example.com/1").to_json()
            assert admin.post("/admin/push/subscriptions", json=first).status_code == 201
            second = BrowserSubscription("https://push.example.com/2").to_json()
            full = admin.post("/admin/push/subscriptions", json=second)
            assert full.status_code == 409
            assert "push.max_subscriptions" in full.json()["error"]
            # the key is made on the first start (without opencode: push needs nothing of it)
            key = daemon.wait_for(
                lambda: admin.get("/admin/push/key").json().get("public_key"), 30, "the key"
            )
            assert checks.check_p256dh(key)
    finally:
        assert daemon.stop() == 0


# ------------------------------------------------------------------------------- the whole path

SUBJECT = "mailto:owner@example.com"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the uid boundary needs a root daemon")


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    with PushService() as service:
        yield service


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, service: PushService) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("push"), f"[push]\nsubject = {json.dumps(SUBJECT)}\n"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        client.headers["User-Agent"] = IPHONE
        yield client


@pytest.fixture(scope="module")
def public_key(client: httpx.Client) -> str:
    answer = client.get("/admin/push/key")
    assert answer.status_code == 200, answer.text
    key: str = answer.json()["public_key"]
    return key


@pytest.fixture(scope="module")
def phone(client: httpx.Client, service: PushService, public_key: str) -> BrowserSubscription:
    browser = BrowserSubscription(service.url("phone"))
    made = client.post("/admin/push/subscriptions", json=browser.to_json())
    assert made.status_code == 201, made.text
    return browser


def new_chat(stack: Stack, client: httpx.Client) -> tuple[str, Path]:
    """A chat of acme/pushed in its own worktree: (session id, worktree)."""
    if not (stack.remotes / "acme" / "pushed.git").exists():
        stack.remote("acme", "pushed")
        cloned = client.post("/admin/repos/clone", json={"repo": "acme/pushed", "wait": True})
        assert cloned.status_code == 201, cloned.text
    clone = stack.daemon.data_dir / "projects" / "repos" / "acme__pushed"
    session = client.post("/session", headers={"x-opencode-directory": str(clone)}, json={})
    assert session.status_code == 200, session.text
    session_id: str = session.json()["id"]
    made = client.post("/admin/worktrees", json={"repo": "acme/pushed", "session_id": session_id})
    assert made.status_code == 201, made.text
    return session_id, Path(made.json()["worktree"]["path"])


def following(stack: Stack, client: httpx.Client) -> None:
    """The daemon follows opencode's events (else a turn could end unseen)."""
    stack.daemon.wait_for(lambda: client.get("/admin/chats").json()["following"], 30, "following events")


def opened(push: Any, browser: BrowserSubscription, public_key: str) -> dict[str, Any]:
    """The push's payload, decrypted with the browser's keys, after its VAPID JWT is verified."""
    assert push.headers["content-encoding"] == "aes128gcm"
    claims = check_vapid(push.headers["authorization"], public_key)
    assert claims["aud"] == checks.origin_of(browser.endpoint)
    assert claims["sub"] == SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    payload: dict[str, Any] = json.loads(browser.decrypt(push.body))
    return payload


def crypto_loaded(pid: int) -> bool:
    """Has process `pid` loaded `cryptography`'s extension (what the daemon must never do)?"""
    return "cryptography" in Path(f"/proc/{pid}/maps").read_text()


def test_bad_subscriptions_are_refused_in_one_line(client: httpx.Client, service: PushService) -> None:
    good = BrowserSubscription(service.url("never")).to_json()
    cases = [
        (
            {**good, "endpoint": "http://push.example.com/x"},
            "endpoint: must be https (http only on loopback)",
        ),
        ({**good, "endpoint": "https://user:pw@push.example.com/x"}, "endpoint: not a push service's URL"),
        ({**good, "keys": {**good["keys"], "p256dh": "AAAA"}}, "keys.p256dh: not a P-256 public key"),
        ({**good, "keys": {**good["keys"], "p256dh": b64url(b"\x04" + bytes(64))}}, "keys.p256dh"),
        ({**good, "keys": {**good["keys"], "auth": b64url(b"short")}}, "keys.auth: not a 16-byte secret"),
        ({"endpoint": good["endpoint"]}, "invalid request"),
        ({**good, "keys": {"p256dh": 3, "auth": "x"}}, "invalid request: keys.p256dh"),
        ({**good, "extra": 1}, "invalid request"),
    ]
    for body, says in cases:
        refused = client.post("/admin/push/subscriptions", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert says in refused.json()["error"], refused.text
        assert one_line(refused.json()["error"])
    assert client.get("/admin/push/subscriptions").json()["subscriptions"] == []
    assert service.received("never") == []


@needs_root
def test_the_key_is_made_on_first_start_and_kept_from_the_agent(stack: Stack, public_key: str) -> None:
    secrets = stack.daemon.data_dir / "secrets"
    private = secrets / seal.PRIVATE_KEY_FILE
    info = private.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, 0)
    assert (stat.S_IMODE(secrets.stat().st_mode), secrets.stat().st_uid) == (0o700, 0)
    assert (secrets / seal.PUBLIC_KEY_FILE).read_text().strip() == public_key
    agent = pwd.getpwnam("dancodes-agent")
    as_agent = subprocess.run(
        ["cat", str(private)], user=agent.pw_uid, group=agent.pw_gid, extra_groups=[], capture_output=True
    )
    assert as_agent.returncode != 0
    assert b"Permission denied" in as_agent.stderr
    assert as_agent.stdout == b""
    made = [e for e in stack.daemon.events() if e.get("event") == "push_keys_ready"]
    assert len(made) == 1
    assert made[0]["public_key"] == public_key


def test_a_finished_chat_is_pushed_with_its_title_and_diff_stat(
    stack: Stack, client: httpx.Client, service: PushService, phone: BrowserSubscription, public_key: str
) -> None:
    following(stack, client)
    listed = client.get("/admin/push/subscriptions").json()["subscriptions"]
    assert [(s["device"], s["push_service"], s["last_delivery"]) for s in listed] == [
        ("iPhone · Safari", service.origin, None)
    ]
    assert "keys" not in json.dumps(listed)
    assert phone.to_json()["keys"]["auth"] not in json.dumps(listed)
    session_id, path = new_chat(stack, client)
    before = len(service.received("phone"))
    stack.llm.reply_tool_call("bash", {"command": "echo hello > pushed.txt", "description": "write a file"})
    stack.llm.reply_text("wrote it")
    prompt(client, session_id, path, "write pushed.txt")
    push = service.wait_for(before + 1, "phone")[-1]
    payload = opened(push, phone, public_key)
    assert payload["tag"] == session_id
    assert payload["url"] == f"/#chat={session_id}"
    assert payload["body"] == "done · 1 file changed, +1 -0"
    title = client.get(f"/session/{session_id}", headers={"x-opencode-directory": str(path)}).json()["title"]
    assert payload["title"] in (title, "Scripted session")  # opencode may retitle it just after
    assert push.headers["topic"] == session_id
    assert push.headers["ttl"] == "86400"
    delivered = stack.daemon.wait_for(
        lambda: client.get("/admin/push/subscriptions").json()["subscriptions"][0]["last_delivery"], 10
    )
    assert (delivered["status"], delivered["ok"], delivered["message"]) == (201, True, "201 accepted")
    # the daemon sealed it through its child: it never loaded the crypto, nor read the key
    assert not crypto_loaded(stack.daemon.proc.pid)
    pem = (stack.daemon.data_dir / "secrets" / seal.PRIVATE_KEY_FILE).read_text()
    body = "".join(pem.splitlines()[1:-1])
    assert body[10:50] not in stack.daemon.log()


def test_a_failed_turn_is_pushed_with_its_error(
    stack: Stack, client: httpx.Client, service: PushService, phone: BrowserSubscription, public_key: str
) -> None:
    following(stack, client)
    session_id, path = new_chat(stack, client)
    before = len(service.received("phone"))
    stack.llm.reply_error(400, "the scripted model refuses to push")
    prompt(client, session_id, path, "fail please")
    payload = opened(service.wait_for(before + 1, "phone")[-1], phone, public_key)
    assert payload["tag"] == session_id
    assert payload["body"].startswith("failed: ")
    assert "refuses to push" in payload["body"]


def test_nothing_is_pushed_while_the_app_is_visible(
    stack: Stack, client: httpx.Client, service: PushService, phone: BrowserSubscription, public_key: str
) -> None:
    following(stack, client)
    session_id, path = new_chat(stack, client)
    client_id = "tab-" + os.urandom(6).hex()
    seen = client.post("/admin/push/presence", json={"client": client_id, "visible": True})
    assert seen.status_code == 200, seen.text
    assert seen.json() == {"suppressed": True}
    assert client.get("/admin/push/subscriptions").json()["suppressed"] is True
    count = len(service.received())
    stack.llm.reply_text("seen on screen")
    prompt(client, session_id, path, "while visible")

    def suppressed() -> bool:
        return any(
            e.get("event") == "push_suppressed" and e.get("session_id") == session_id
            for e in stack.daemon.events()
        )

    stack.daemon.wait_for(suppressed, 60, "the turn's push held back")
    hidden = client.post("/admin/push/presence", json={"client": client_id, "visible": False})
    assert hidden.json() == {"suppressed": False}
    stack.llm.reply_text("seen on the lock screen")
    prompt(client, session_id, path, "while hidden")
    # pushes go out one after another: this one arriving means the first had its turn, and was not sent
    later = service.wait_for(count + 1)
    assert len(later) == count + 1
    assert opened(later[-1], phone, public_key)["tag"] == session_id
    for bad in (
        {"client": "short", "visible": True},
        {"client": client_id, "visible": "yes"},
        {"client": client_id},
    ):
        refused = client.post("/admin/push/presence", json=bad)
        assert refused.status_code == 400, refused.text
        assert one_line(refused.json()["error"])


def test_a_test_push_reports_each_service_and_a_410_drops_the_subscription(
    client: httpx.Client, service: PushService, phone: BrowserSubscription, public_key: str
) -> None:
    gone = BrowserSubscription(service.url("gone"))
    service.answer("gone", 410)
    laptop = client.post("/admin/push/subscriptions", json={**gone.to_json(), "device": "old laptop"})
    assert laptop.status_code == 201, laptop.text
    assert laptop.json()["subscription"]["device"] == "old laptop"
    again = client.post("/admin/push/subscriptions", json={**gone.to_json(), "device": "old laptop"})
    assert (again.status_code, again.json()["created"]) == (200, False)
    phone_id, gone_id = subscription_id(phone.endpoint), subscription_id(gone.endpoint)
    before = len(service.received("phone"))
    answer = client.post("/admin/push/test", json={})
    assert answer.status_code == 200, answer.text
    results = {r["id"]: r for r in answer.json()["results"]}
    assert (results[phone_id]["status"], results[phone_id]["ok"], results[phone_id]["dropped"]) == (
        201,
        True,
        False,
    )
    assert (results[gone_id]["status"], results[gone_id]["dropped"]) == (410, True)
    assert results[gone_id]["message"].startswith("410 gone: unsubscribed")
    assert json.loads(gone.decrypt(service.received("gone")[-1].body))["title"] == "dancodes"
    assert opened(service.received("phone")[before], phone, public_key)["tag"] == "dancodes-test"
    ids = [s["id"] for s in client.get("/admin/push/subscriptions").json()["subscriptions"]]
    assert ids == [phone_id]
    # one subscription alone; an unknown one is a 404
    one = client.post("/admin/push/test", json={"id": phone_id}).json()["results"]
    assert [r["id"] for r in one] == [phone_id]
    unknown = client.post("/admin/push/test", json={"id": gone_id})
    assert unknown.status_code == 404
    assert one_line(unknown.json()["error"])


def test_deleting_a_subscription(client: httpx.Client, service: PushService) -> None:
    extra = BrowserSubscription(service.url("extra"))
    made = client.post("/admin/push/subscriptions", json=extra.to_json())
    assert made.status_code == 201, made.text
    sub_id = made.json()["subscription"]["id"]
    deleted = client.delete(f"/admin/push/subscriptions/{sub_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": sub_id}
    again = client.delete(f"/admin/push/subscriptions/{sub_id}")
    assert again.status_code == 404
    assert one_line(again.json()["error"])
    assert sub_id not in [s["id"] for s in client.get("/admin/push/subscriptions").json()["subscriptions"]]
