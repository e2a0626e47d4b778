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
from supervisor.errors import (
    DataDirError,
    InvalidSubscription,
    PushUnavailable,
    TooManySubscriptions,
    UnknownSubscription,
)
from supervisor.push import checks, seal, sender
from supervisor.push.device import clean_label, device_name
from supervisor.push.notices import MAX_PAYLOAD, kind_of, notice_for
from supervisor.push.notifier import DEFAULT_SUBJECT, vapid_subject
from supervisor.push.presence import MAX_CLIENTS, Beat, Presence, app_visible
from supervisor.push.subscriptions import Delivery, SubscriptionStore, subscription_id
from supervisor.reaper import Reaper
from tests.conftest import ONLY_TEST_SERVICES, DaemonProc, launch_daemon
from tests.pushservice import BrowserSubscription, PushService, b64url, check_vapid, unb64url

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
    for bad in ["", "AAAA", "!!!!", b64url(bytes(off_curve)), b64url(compressed), b64url(b"\x04" + b"\xff" * 64)]:
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
        ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36", "Android · Chrome"),
        ("Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0", "Android · Firefox"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 CriOS/124 Mobile/15E148 Safari/604.1", "iPhone · Chrome"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15", "Mac · Safari"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36 Edg/124.0", "Windows · Edge"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/124.0 Safari/537.36", "Linux · Chrome"),
        ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 SamsungBrowser/24.0 Chrome/117.0 Mobile Safari/537.36", "SM-S918B · Samsung Internet"),
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
    assert "client-0009" not in presence.beats and f"client-{MAX_CLIENTS + 9:04d}" in presence.beats


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
    assert body["body"].startswith("failed: ошибка") and body["body"].endswith("…")
    assert "\x1b" not in body["body"] and "\x07" not in body["body"]
    assert len(body["title"]) <= 120


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
    assert one_line(message) and len(message) < 260


# ------------------------------------------------------------------------------- the subscriptions kept


def keys_of(browser: BrowserSubscription) -> tuple[str, str]:
    keys = browser.to_json()["keys"]
    return keys["p256dh"], keys["auth"]


def test_subscriptions_are_kept_private_and_survive_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "push"
    store = SubscriptionStore(directory, cap=lambda: 3, clock=lambda: 1000.0)
    phone = BrowserSubscription("https://push.example.com/phone")
    sub, created = store.add(phone.endpoint, *keys_of(phone), "iPhone · Safari")
    assert created and sub.id == subscription_id(phone.endpoint)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "subscriptions.json").stat().st_mode) == 0o600
    # the same browser again: replaced, not added
    again, created = store.add(phone.endpoint, *keys_of(BrowserSubscription(phone.endpoint)), "renamed")
    assert not created and again.id == sub.id and again.device == "renamed" and len(store) == 1
    store.record(sub.id, Delivery(at=1001.0, status=201, ok=True, message="201 accepted"))
    reopened = SubscriptionStore(directory, cap=lambda: 3)
    [kept] = reopened.listing()
    assert kept.device == "renamed" and kept.created == 1000.0
    assert kept.last_delivery is not None and kept.last_delivery.status == 201
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
    assert gone.device == "d1" and len(store) == 1
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
    assert line["event"] == "push_subscriptions_unreadable" and line["log_level"] == "error"
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
        assert claims == {"aud": checks.origin_of(browser.endpoint), "exp": expires, "sub": "mailto:me@example.com"}
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
    assert message.startswith("the push sealer failed: ") and one_line(message)
    assert "TOPSECRET" not in message
    assert (secrets / seal.PRIVATE_KEY_FILE).read_text() == garbage  # never replaced behind the user's back
