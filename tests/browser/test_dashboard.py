"""The dashboard and "why is this chat stuck?" in a real chromium at a phone viewport, against the real
daemon, opencode, Caddy and the scripted LLM. The stack of this module also runs `sleeper` (a service to stop
and start while the dashboard watches) and `maker`, which leaves one orphan process behind for the dashboard
to kill. The tests run in order: the first makes a chat whose provider fails, the second finds its worktree.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import psutil
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import shot
from tests.stack import Stack, running_stack

REPO = "acme/rocket"

SERVICES = """
[services.sleeper]
argv = ["python3", "-c", "import time; print('sleeper up', flush=True); time.sleep(600)"]
[services.sleeper.probe]
start_seconds = 0.2

# one `sleep 600` in a session of its own: its parent exits at once, so it comes back to the daemon, an orphan
[services.maker]
argv = ["python3", "-c", "import subprocess as s; s.Popen(['sleep', '600'], start_new_session=True, \
stdout=s.DEVNULL, stderr=s.DEVNULL)"]
[services.maker.restart]
policy = "never"
[services.maker.probe]
start_seconds = 0.1
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("dashboard"), SERVICES) as stack:
        stack.remote(*REPO.split("/"))
        with stack.signed_in() as client:
            cloned = client.post("/admin/repos/clone", json={"repo": REPO, "wait": True})
            assert cloned.status_code == 201, cloned.text
        yield stack


def tid(page: Page | Locator, name: str) -> Locator:
    return page.locator(f'[data-testid="{name}"]')


def service(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="service"][data-name="{name}"]')


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # killed, about to be reaped
    except psutil.NoSuchProcess:
        return True


def test_the_stuck_view_of_a_chat_in_provider_retry(page: Page, stack: Stack) -> None:
    expect(tid(page, "repo-button")).to_contain_text("rocket")
    stack.llm.reply_error(503, "the provider is over capacity")
    stack.llm.reply_error(503, "the provider is over capacity")
    stack.llm.reply_text("Answered once it came back.")
    tid(page, "prompt").fill("are you there?")
    tid(page, "send").click()
    status = tid(page, "chat-status")
    expect(status).to_have_attribute("data-status", "retry")
    session_id = tid(page, "messages").get_attribute("data-session-id")
    assert session_id

    tid(status, "why-stuck").click()  # one tap from the chat
    stuck = tid(page, "stuck")
    expect(stuck).to_be_visible()
    expect(tid(stuck, "stuck-status")).to_have_attribute("data-status", "retry")
    retry = tid(stuck, "stuck-retry")
    expect(retry).to_contain_text(re.compile(r"retry attempt [12]: .*the provider is over capacity"))
    expect(tid(stuck, "findings")).to_contain_text("the provider failed, retrying (attempt")
    expect(tid(stuck, "stuck-last-event")).to_contain_text(re.compile(r"last event: [a-z.]+, \d+s ago"))
    expect(tid(stuck, "stuck-instance")).to_have_attribute("data-state", "loaded")
    expect(tid(stuck, "stuck-opencode")).to_have_attribute("data-state", "running")
    expect(tid(stuck, "stuck-probes")).to_contain_text("running")
    sse = tid(stuck, "stuck-sse")
    expect(sse).to_have_attribute("data-connected", "true")
    expect(sse).to_contain_text("live stream: connected, last event received")
    shot(page, "40-stuck-provider-retry")

    # the view follows the chat: once the provider answers, it says so
    expect(tid(stuck, "stuck-status")).to_have_attribute("data-status", "idle", timeout=60_000)
    expect(tid(stuck, "stuck-retry")).to_have_count(0)
    expect(tid(stuck, "findings")).to_contain_text("idle: no turn is running")
    tid(page, "stuck-close").click()
    expect(stuck).to_have_count(0)
    expect(tid(page, "messages")).to_contain_text("Answered once it came back.")


def test_the_dashboard_shows_live_states_and_kills_an_orphan(page: Page, stack: Stack) -> None:
    expect(tid(page, "messages")).to_have_attribute("data-session-id", re.compile(r".+"))  # the last chat
    with stack.signed_in() as client:
        health = client.get("/global/health")  # opencode's own, through the wall
        assert health.status_code == 200, health.text
        expect(tid(page, "opencode-version")).to_have_text(health.json()["version"])
        orphans = stack.daemon.wait_for(
            lambda: (o := client.get("/admin/processes").json()["orphans"]) and o, 30, "maker's orphan"
        )
        (orphan,) = orphans
        assert orphan["cmdline"] == ["sleep", "600"]
        pid = orphan["pid"]
        try:
            tid(page, "version").click()  # the top bar's version opens it
            dash = tid(page, "dashboard")
            expect(dash).to_be_visible()
            expect(service(page, "opencode")).to_have_attribute("data-state", "running")
            expect(service(page, "caddy")).to_have_attribute("data-state", "running")
            expect(service(page, "maker")).to_have_attribute("data-state", "exited")
            expect(service(page, "sleeper")).to_have_attribute("data-state", "running")

            # live: a service stopped and started elsewhere shows so here, the page not reloaded
            stopped = client.post("/admin/services/sleeper/stop")
            assert stopped.status_code == 200, stopped.text
            expect(service(page, "sleeper")).to_have_attribute("data-state", "stopped")
            started = client.post("/admin/services/sleeper/start")
            assert started.status_code == 200, started.text
            expect(service(page, "sleeper")).to_have_attribute("data-state", "running")
            expect(tid(service(page, "sleeper"), "service-state")).to_have_text("running")

            # a service's recent lines, a tap away
            service(page, "sleeper").locator(".svc-head").click()
            expect(tid(service(page, "sleeper"), "service-logs")).to_contain_text("sleeper up")

            expect(tid(dash, "disk-volume")).to_contain_text(re.compile(r"volume: .+ used of .+ free"))
            expect(tid(dash, "disk-usage")).to_contain_text(REPO)
            chats = client.get("/admin/chats").json()["chats"]
            session_id = chats[0]["session_id"]
            expect(dash.locator(f'[data-testid="worktree"][data-session-id="{session_id}"]')).to_be_visible()
            expect(dash.locator('[data-testid="instance"][data-state="loaded"]').first).to_be_visible()

            # GC: a dry run first, which keeps the chat that was just used
            tid(dash, "gc-dry-run").click()
            report = tid(dash, "gc-report")
            expect(report).to_contain_text("dry run: 0 would go")
            expect(report).to_contain_text(f"keep {REPO} {session_id[:12]}")
            expect(tid(dash, "gc-run")).to_be_disabled()  # nothing to delete

            row = dash.locator(f'[data-testid="orphan"][data-pid="{pid}"]')
            expect(row).to_contain_text("sleep 600")
            expect(row).to_contain_text("maker")
            row.scroll_into_view_if_needed()
            shot(page, "41-dashboard-orphan")
            tid(row, "orphan-kill").click()
            expect(row).to_have_count(0)
            expect(tid(dash, "no-orphans")).to_be_visible()
            stack.daemon.wait_for(lambda: gone(pid), 10, f"orphan {pid} dead")
            dash.evaluate("el => el.scrollTo(0, 0)")
            shot(page, "42-dashboard")
        finally:
            if not gone(pid):  # the test's own orphan: ended here when the dashboard did not
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).kill()
    tid(page, "dashboard-close").click()
    expect(tid(page, "dashboard")).to_have_count(0)
