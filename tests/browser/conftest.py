"""Browser tests: Debian's chromium, driven by Playwright's sync API, at a phone viewport, against the real
stack (daemon + opencode + Caddy + the scripted LLM) serving the built web app from `web/dist`.

- `stack`: one per test module (`tests/stack.py`), stopped by pid at the end of the module; with a token, and
  `github`, the GitHub REST stand-in (`tests/githttps.py`), at `git.github_api`.
- `browser`: one headless chromium per module (`--no-sandbox`: the tests run as root in containers).
- `device`: what the phone keeps between visits (the web app's localStorage), carried from test to test in a
  module so "the last repo, remembered on the device" means something; cookies are not carried.
- `page`: a fresh context per test (phone viewport, touch, scale 3) seeded with the device's storage, logged
  in through the real login page, on `/`. On failure a screenshot and the page's console are kept.

Playwright's sync API runs its own asyncio loop in a greenlet; these tests and fixtures are all synchronous,
so pytest-trio (`trio_mode`) never runs a trio loop around them and the two do not meet.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.conftest import TEST_PASSWORD, toml_value
from tests.githttps import GitHubStandIn
from tests.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parents[2]
WEB_INDEX = ROOT / "web" / "dist" / "index.html"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
TRACES = ROOT / "test-artifacts" / "traces"

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "screen": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/150.0.0.0 Mobile Safari/537.36"
    ),
}
TIMEOUT_MS = 30_000
"""Every wait in these tests (Playwright actions and `expect`) gives up after this."""

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container: chromium's sandbox cannot start
    "--disable-dev-shm-usage",  # containers' /dev/shm is often 64 MB
    "--disable-gpu",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if WEB_INDEX.is_file():
        return
    skip = pytest.mark.skip(reason=f"{WEB_INDEX.relative_to(ROOT)} missing: build it (scripts/build-web.sh)")
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call":
        item.stash[_failed] = report.failed
    return report


_failed = pytest.StashKey[bool]()


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian's chromium is not installed: run scripts/install.sh --with-chromium (make test does)"
        )
    return path


GITHUB_TOKEN = "ghp_thebrowserteststoken0123456789abcdEF"


@pytest.fixture(scope="module")
def stack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def github(stack_root: Path) -> Iterator[GitHubStandIn]:
    """GitHub's REST API for the stack (`git.github_api`): the pull requests the phone opens land here,
    checked against the stack's own (`file://`) remotes."""
    with GitHubStandIn(stack_root / "remotes", GITHUB_TOKEN, stack_root / "github-tls") as github:
        yield github


@pytest.fixture(scope="module")
def stack(stack_root: Path, github: GitHubStandIn) -> Iterator[Stack]:
    env = {"GITHUB_TOKEN": GITHUB_TOKEN, "SSL_CERT_FILE": str(github.ca)}  # the daemon's httpx trusts it
    # a bash command starting "echo may-i" asks the user first (the rest runs without asking)
    permission = {"*": "allow", "bash": {"*": "allow", "echo may-i*": "ask"}}
    extra = f"github_api = {toml_value(github.api)}\n"
    with running_stack(stack_root, extra, env=env, opencode_extra={"permission": permission}) as stack:
        yield stack


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def device() -> dict[str, Any]:
    """The phone's storage (`storage_state` origins: localStorage), kept across a module's tests."""
    return {"cookies": [], "origins": []}


def log_in(page: Page, stack: Stack) -> None:
    """Through the real login page: `/` redirects there, the password goes in, the form lands back on `/`."""
    page.goto(f"{stack.url}/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    page.locator("input[name=password]").fill(TEST_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"{stack.url}/")


@pytest.fixture
def page(
    request: pytest.FixtureRequest, browser: Browser, stack: Stack, device: dict[str, Any]
) -> Iterator[Page]:
    stack.llm.reset()
    context = browser.new_context(**PHONE, storage_state=device)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    console: list[str] = []
    context.tracing.start(screenshots=True, snapshots=True)
    page = context.new_page()
    page.on("console", lambda m: console.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    (SCREENSHOTS / f"FAILED-{request.node.name}.png").unlink(missing_ok=True)
    try:
        log_in(page, stack)
        yield page
        device["origins"] = context.storage_state()["origins"]
    finally:
        if request.node.stash.get(_failed, False):
            try:
                shot(page, f"FAILED-{request.node.name}")
                TRACES.mkdir(parents=True, exist_ok=True)
                trace = TRACES / f"{request.node.name}.zip"
                context.tracing.stop(path=str(trace))
                console.append(f"(a trace: .venv/bin/playwright show-trace {trace.relative_to(ROOT)})")
            except Exception as e:  # the page may be gone; the report matters more than the picture
                console.append(f"(no failure screenshot or trace: {e})")
            print("\n".join(["the page's console:", *console[-50:]]))
            print("the LLM's requests:", [(r.kind, r.last_user_text[:60]) for r in stack.llm.requests])
            states = [e for e in stack.daemon.events() if e.get("event") == "state"]
            lines = [f"{e['service']} {e['state']} {e['reason']}" for e in states]
            print("the daemon's service states:", *lines, sep="\n  ")
        context.close()
        stack.llm.release()


def shot(page: Page, name: str) -> Path:
    """A screenshot of the viewport under test-artifacts/screenshots (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path))
    return path


expect.set_options(timeout=TIMEOUT_MS)
