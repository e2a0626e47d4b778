"""The notifications panel in Chromium at a phone's size, against the real stack and a loopback push service:
the app tells the daemon when it is visible (and when it goes), permission is asked only from a tap, the
devices are listed with how their last push went, a test push reaches the push service, a device is
deleted, and an iPhone outside the Home Screen app is told how to get notifications.

Subscribing itself needs the browser's own push service (Google's, for Chromium), which no test here can
reach: the subscription is made through the API as the browser would post it (tests/test_push.py checks
what the daemon does with one, decrypting every push).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PHONE, log_in, shot
from tests.browser.test_web_app import open_sidebar, tid
from tests.pushservice import BrowserSubscription, PushService
from tests.stack import Stack

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
#: counts the app's permission requests, so a test can tell one was asked only when tapped
COUNT_PERMISSION_REQUESTS = """
window.__asked = 0;
if (window.Notification) {
    Notification.requestPermission = () => { window.__asked += 1; return Promise.resolve("denied"); };
}
"""


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    with PushService() as service:
        yield service


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        stack.remote("acme", "bell")
        cloned = client.post("/admin/repos/clone", json={"repo": "acme/bell", "wait": True})
        assert cloned.status_code == 201, cloned.text
        yield client


def open_panel(page: Page) -> None:
    picker = tid(page, "repo-picker")
    if picker.is_visible():
        tid(picker, "repo-item").first.click()
    open_sidebar(page)
    tid(page, "notifications-button").click()
    expect(tid(page, "notifications")).to_be_visible()


def suppressed(admin: httpx.Client) -> bool:
    answer: bool = admin.get("/admin/push/subscriptions").json()["suppressed"]
    return answer


def test_the_app_says_when_it_is_visible_and_when_it_goes(
    browser: Browser, stack: Stack, admin: httpx.Client
) -> None:
    assert not suppressed(admin)
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        log_in(page, stack)
        stack.daemon.wait_for(lambda: suppressed(admin), 30, "the app's first beat")
        page.goto("about:blank")  # the page goes away: its last beat says so
        stack.daemon.wait_for(lambda: not suppressed(admin), 30, "the app's goodbye")
    finally:
        context.close()


def test_devices_a_test_push_and_delete(
    page: Page, stack: Stack, admin: httpx.Client, service: PushService
) -> None:
    browser_side = BrowserSubscription(service.url("pixel"))
    made = admin.post(
        "/admin/push/subscriptions",
        json=browser_side.to_json(),
        headers={"User-Agent": PHONE["user_agent"]},
    )
    assert made.status_code == 201, made.text
    open_panel(page)
    device = tid(page, "push-device")
    expect(device).to_have_count(1)
    expect(device).to_contain_text("Pixel 8 · Chrome")
    expect(device).to_contain_text("added")
    shot(page, "push-01-devices")

    tid(page, "send-test-push").click()
    expect(tid(page, "push-message")).to_contain_text("test sent: 1 of 1 push services took it")
    expect(device).to_contain_text("201 accepted")
    [push] = service.received("pixel")
    assert browser_side.decrypt(push.body).startswith(b'{"title":"dancodes"')
    shot(page, "push-02-tested")

    tid(page, "delete-push-device").click()
    expect(tid(page, "push-device")).to_have_count(0)
    expect(tid(page, "push-message")).to_contain_text("Pixel 8 · Chrome: no more notifications")
    assert admin.get("/admin/push/subscriptions").json()["subscriptions"] == []


def test_permission_is_asked_only_from_a_tap(browser: Browser, stack: Stack, admin: httpx.Client) -> None:
    context = browser.new_context(**PHONE)
    try:
        context.add_init_script(COUNT_PERMISSION_REQUESTS)
        page = context.new_page()
        log_in(page, stack)
        open_panel(page)
        enable = tid(page, "enable-push")
        expect(enable).to_be_visible()
        asked: Any = page.evaluate("window.__asked")
        assert asked == 0
        enable.click()
        expect(tid(page, "push-message")).to_contain_text("notifications are blocked for this site")
        assert page.evaluate("window.__asked") == 1
    finally:
        context.close()


def test_an_iphone_outside_the_home_screen_is_told_to_add_it(browser: Browser, stack: Stack) -> None:
    context = browser.new_context(**{**PHONE, "user_agent": IPHONE})
    try:
        page = context.new_page()
        log_in(page, stack)
        open_panel(page)
        expect(tid(page, "ios-home-screen")).to_contain_text("Add to Home Screen")
        expect(tid(page, "ios-home-screen")).to_contain_text("16.4")
        expect(tid(page, "enable-push")).to_have_count(0)
        shot(page, "push-03-iphone-in-safari")
    finally:
        context.close()
