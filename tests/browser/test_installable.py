"""The installable app in a real chromium at a phone viewport, against the real stack: the manifest and icons
fetched without the cookie, the service worker controlling the page and keeping only the app shell, the app
opened offline, links to a chat, a push shown and its tap, and a deploy offered as "reload for the new
version".

The stack runs from an install of its own (`DANCODES_HOME`): the checkout's conf/, node_modules/ and its
pin, and a web/dist that is a link to a build, so a test can deploy a second build while the stack runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, shot
from tests.conftest import reachable_by_agent
from tests.stack import Stack, running_stack

DIST = ROOT / "web" / "dist"
REPO = "acme/rocket"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An install whose web/dist links to a build in builds/ (the first: the checkout's)."""
    home = tmp_path_factory.mktemp("install")
    (home / "conf").symlink_to(ROOT / "conf")
    (home / "node_modules").symlink_to(ROOT / "node_modules")
    for pin in ("package.json", "package-lock.json"):  # opencode's pin, which node_modules holds
        (home / pin).symlink_to(ROOT / pin)
    shutil.copytree(DIST, home / "builds" / "first")
    (home / "web").mkdir()
    (home / "web" / "dist").symlink_to(home / "builds" / "first")
    reachable_by_agent(home)
    return home


def deploy(home: Path, build: Path) -> None:
    """Swap the served build at once, as a deploy does (a new link renamed over the old one)."""
    link = home / "web" / "dist.new"
    link.symlink_to(build)
    os.replace(link, home / "web" / "dist")


@pytest.fixture(scope="module")
def stack(stack_root: Path, home: Path) -> Iterator[Stack]:
    with running_stack(stack_root, env={"DANCODES_HOME": str(home)}) as stack:
        yield stack


def tid(page: Page, name: str) -> Any:
    return page.locator(f'[data-testid="{name}"]')


ROUNDS = 600
"""A wait for something to happen polls this many times, 50 ms apart (30 s), then fails."""


def until(page: Page, condition: str, arg: Any = None) -> Any:
    """The first truthy answer of the async function `condition` (JS source), run in the page every 50 ms.
    (`wait_for_function` takes a promise for a truthy answer.)"""
    value = page.evaluate(
        f"""async (arg) => {{
            const condition = {condition};
            for (let round = 0; round < {ROUNDS}; round++) {{
                const value = await condition(arg);
                if (value) return value;
                await new Promise((resolve) => setTimeout(resolve, 50));
            }}
            return null;
        }}""",
        arg,
    )
    assert value, f"never true: {condition}"
    return value


def controlled(page: Page) -> None:
    """Until the service worker controls the page (it claims the page that installed it)."""
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")


ASK_WORKER = """() => new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => resolve(event.data);
    navigator.serviceWorker.controller.postMessage({ type: "shell" }, [channel.port2]);
})"""

CACHED = """async () => {
    const kept = [];
    for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
            const url = new URL(request.url);
            kept.push([name, url.origin, url.pathname + url.search]);
        }
    }
    return kept;
}"""


def shell_of(build: Path) -> set[str]:
    return {f"/_app/{p.name}" for p in (build / "_app").iterdir()}


def test_the_manifest_and_icons_come_without_the_cookie_and_make_the_app_installable(
    page: Page, stack: Stack
) -> None:
    manifest_url = page.locator('link[rel="manifest"]').get_attribute("href")
    assert manifest_url == "/_app/manifest.webmanifest"
    # fetched as browsers fetch a manifest: without credentials (the login cookie stays home)
    fetched = page.evaluate(
        """async (url) => {
            const response = await fetch(url, { credentials: "omit", cache: "no-store" });
            const type = response.headers.get("content-type");
            return { status: response.status, type, body: await response.text() };
        }""",
        manifest_url,
    )
    assert fetched["status"] == 200
    assert fetched["type"].startswith("application/manifest+json")
    manifest = json.loads(fetched["body"])
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == manifest["scope"] == "/"
    icons = [*manifest["icons"], {"src": "/_app/apple-touch-icon.png", "sizes": "180x180", "purpose": "any"}]
    touch = page.locator('link[rel="apple-touch-icon"]').get_attribute("href")
    assert touch == "/_app/apple-touch-icon.png"
    for icon in icons:
        size = page.evaluate(
            """async (src) => {
                const response = await fetch(src, { credentials: "omit", cache: "no-store" });
                if (!response.ok) return `HTTP ${response.status}`;
                const image = await createImageBitmap(await response.blob());
                return `${image.width}x${image.height}`;
            }""",
            icon["src"],
        )
        assert size == icon["sizes"], icon  # a real PNG the browser decodes, of the size the manifest says
    purposes = {(icon["sizes"], icon["purpose"]) for icon in icons}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable"), ("180x180", "any")} <= purposes

    # what chromium itself makes of it: the manifest parses, and nothing stands in the way of installing
    controlled(page)
    cdp = page.context.new_cdp_session(page)
    parsed = cdp.send("Page.getAppManifest")
    assert parsed["url"] == f"{stack.url}/_app/manifest.webmanifest"
    assert not parsed["errors"], parsed["errors"]
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # a Playwright context is an incognito profile, where chromium installs nothing; that is all it finds
    assert [e["errorId"] for e in errors] == ["in-incognito"], errors


def test_the_worker_controls_the_page_and_keeps_only_the_app_shell(
    page: Page, stack: Stack, home: Path
) -> None:
    controlled(page)
    expect(tid(page, "repo-button")).to_be_visible()
    served = (home / "web" / "dist").resolve()
    answer = page.evaluate(ASK_WORKER)
    assert set(answer["shell"]) == shell_of(served)
    # the app has talked to the daemon and to opencode by now; reload once more so the page is fetched
    # through the worker too, then look at everything it keeps
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/admin/chats'))"
    )
    page.reload()
    controlled(page)
    expect(tid(page, "repo-button")).to_be_visible()
    kept = page.evaluate(CACHED)
    assert {name for name, _, _ in kept} == {f"dancodes-shell-{answer['version']}"}
    assert {origin for _, origin, _ in kept} == {stack.url}
    paths = sorted(path for _, _, path in kept)
    assert paths == sorted({"/", *shell_of(served)})  # the page and its files, each once; no API answer


def test_offline_the_app_opens_from_the_worker_and_says_so(page: Page, stack: Stack) -> None:
    controlled(page)
    expect(tid(page, "repo-button")).to_be_visible()
    page.context.set_offline(True)
    try:
        page.reload()
        expect(tid(page, "offline-banner")).to_be_visible()
        expect(tid(page, "offline-banner")).to_contain_text("offline")
        expect(tid(page, "repo-button")).to_be_visible()  # the app itself, not the browser's error page
        expect(tid(page, "messages")).to_contain_text("loading")
        shot(page, "offline")
    finally:
        page.context.set_offline(False)
    # the network is back: the app loads what it waited for, without a reload
    expect(tid(page, "offline-banner")).to_be_hidden()
    expect(tid(page, "messages")).not_to_contain_text("loading")


def test_an_expired_login_still_reaches_the_login_page(page: Page, stack: Stack) -> None:
    """The worker keeps a copy of the page, but never hides the wall: the page comes from the network
    first."""
    controlled(page)
    expect(tid(page, "repo-button")).to_be_visible()
    page.context.clear_cookies()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.reload()
    expect(page).to_have_url(re.compile(r"/auth/login"))
    expect(page.locator("input[name=password]")).to_be_visible()
    # straight there: the kept page never started the app (whose first call would also have met the wall)
    assert not [url for url in asked if "/admin/" in url or "/_app/index-" in url], asked


def make_chat(client: httpx.Client, repo_path: str) -> str:
    made = client.post("/session", headers={"x-opencode-directory": repo_path}, json={})
    assert made.status_code == 200, made.text
    session_id: str = made.json()["id"]
    worktree = client.post("/admin/worktrees", json={"repo": REPO, "session_id": session_id})
    assert worktree.status_code == 201, worktree.text
    return session_id


@pytest.fixture(scope="module")
def chats(stack: Stack) -> list[str]:
    """Two chats of REPO, made through the API."""
    stack.remote(*REPO.split("/"))
    with stack.signed_in() as client:
        cloned = client.post("/admin/repos/clone", json={"repo": REPO, "wait": True})
        assert cloned.status_code in (200, 201), cloned.text
        path = cloned.json()["repo"]["path"]
        return [make_chat(client, path), make_chat(client, path)]


def open_chat(page: Page) -> str | None:
    value: str | None = tid(page, "messages").get_attribute("data-session-id")
    return value


def test_a_link_opens_that_chat_on_load_and_on_hashchange(page: Page, stack: Stack, chats: list[str]) -> None:
    first, second = chats
    for target in (first, second):
        page.goto(f"{stack.url}/#chat={target}")
        expect(tid(page, "messages")).to_have_attribute("data-session-id", target)
        expect(page).to_have_url(f"{stack.url}/")  # taken out of the address: the same link works again
    page.evaluate(f"() => {{ location.hash = 'chat={first}'; }}")
    expect(tid(page, "messages")).to_have_attribute("data-session-id", first)
    page.evaluate(f"() => {{ location.hash = 'chat={second}'; }}")
    expect(tid(page, "messages")).to_have_attribute("data-session-id", second)
    # a chat that does not exist: said, and the chat on screen stays
    page.evaluate("() => { location.hash = 'chat=ses_nosuchchat'; }")
    expect(page.locator(".notice")).to_contain_text("ses_nosuchchat")
    assert open_chat(page) == second


def test_a_push_shows_a_notification_and_its_tap_opens_the_chat(
    page: Page, stack: Stack, chats: list[str]
) -> None:
    first, second = chats
    page.context.grant_permissions(["notifications"], origin=stack.url)
    page.goto(f"{stack.url}/#chat={first}")
    expect(tid(page, "messages")).to_have_attribute("data-session-id", first)
    controlled(page)
    cdp = page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    for _ in range(ROUNDS):  # chromium reports the registrations as events, soon after
        latest = {r["registrationId"]: r for r in registrations}  # each one's last event is its state
        ours = [r for r in latest.values() if r["scopeURL"] == f"{stack.url}/" and not r["isDeleted"]]
        if ours:
            break
        page.wait_for_timeout(50)
    assert ours, registrations
    payload = {
        "title": "fix the flaky test",
        "body": "done: 2 files changed",
        "tag": second,
        "url": f"/#chat={second}",
    }
    # a push as the push service delivers it (the daemon's encryption is tested on its side). Chromium drops
    # now and then a message delivered while it starts the worker up (one clean-clone run in four here): a
    # push service retries an undelivered message, so this does too, a few times; the same tag replaces a
    # notification, so a second delivery cannot show a second one
    notifications = """async () => {
        const shown = await (await navigator.serviceWorker.ready).getNotifications();
        const seen = (n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data });
        return shown.length && shown.map(seen);
    }"""
    shown = None
    for _attempt in range(5):
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": stack.url, "registrationId": ours[0]["registrationId"], "data": json.dumps(payload)},
        )
        shown = page.evaluate(
            f"""async () => {{
                for (let round = 0; round < 120; round++) {{
                    const value = await ({notifications})();
                    if (value) return value;
                    await new Promise((resolve) => setTimeout(resolve, 50));
                }}
                return null;
            }}"""
        )
        if shown:
            break
    assert shown, "no notification after 5 deliveries"
    assert shown == [
        {"title": payload["title"], "body": payload["body"], "tag": second, "data": {"url": payload["url"]}}
    ]

    # a payload that is not ours still shows (a worker that shows nothing for a push loses its subscription)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": stack.url, "registrationId": ours[0]["registrationId"], "data": "not json"},
    )
    until(
        page,
        """async () => {
            const shown = await (await navigator.serviceWorker.ready).getNotifications();
            return shown.some((n) => n.body === "not json");
        }""",
    )

    # the tap: headless chromium has no notification to tap, so the worker is handed the click event for the
    # notification it showed; the open app window is told to show that chat
    [worker] = [w for w in page.context.service_workers if w.url == f"{stack.url}/sw.js"]
    worker.evaluate(
        """async (tag) => {
            const [notification] = await self.registration.getNotifications({ tag });
            self.dispatchEvent(new NotificationEvent("notificationclick", { notification }));
        }""",
        second,
    )
    expect(tid(page, "messages")).to_have_attribute("data-session-id", second)
    until(  # and the tapped notification is gone
        page,
        """async (tag) => !(await (await navigator.serviceWorker.ready).getNotifications({ tag })).length""",
        second,
    )


@pytest.fixture(scope="module")
def second_build(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """The web app built again with a change to its script and its style: new files, a new worker."""
    web = tmp_path_factory.mktemp("second") / "web"
    skip = shutil.ignore_patterns("node_modules", "dist", ".npm-stamp", ".build-stamp")
    shutil.copytree(ROOT / "web", web, ignore=skip)
    (web / "node_modules").symlink_to(ROOT / "web" / "node_modules")
    style = web / "src" / "style.css"
    style.write_text(style.read_text() + "\n.second-build { color: #010203; }\n")
    main = web / "src" / "main.tsx"
    main.write_text(main.read_text() + '\nconsole.info("the second build");\n')
    out = home / "builds" / "second"
    vite = web / "node_modules" / ".bin" / "vite"
    built = subprocess.run(
        [str(vite), "build", "--outDir", str(out), "--emptyOutDir"],
        cwd=web,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    assert shell_of(out) != shell_of(home / "builds" / "first")
    return out


def running(page: Page) -> set[str]:
    """The files of our build the page runs: its script and its stylesheet."""
    files: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('script[src^="/_app/"], link[rel=stylesheet][href^="/_app/"]')]
            .map((e) => e.getAttribute("src") ?? e.getAttribute("href"))"""
    )
    assert len(files) == 2, files
    return set(files)


def test_a_deploy_is_offered_as_a_reload_and_the_tap_loads_it(
    page: Page, stack: Stack, home: Path, second_build: Path
) -> None:
    first = home / "builds" / "first"
    deploy(home, first)
    page.reload()
    controlled(page)
    old = page.evaluate(ASK_WORKER)
    assert set(old["shell"]) == shell_of(first)
    expect(tid(page, "update-banner")).to_be_hidden()
    try:
        deploy(home, second_build)
        # the phone comes back to the app: it looks for a new worker
        page.evaluate("() => navigator.serviceWorker.getRegistration().then((r) => r.update())")
        banner = tid(page, "update-banner")
        expect(banner).to_be_visible()
        assert page.evaluate(ASK_WORKER)["version"] == old["version"]  # nothing changed under the user
        shot(page, "new-version")
        with page.expect_navigation():  # the tap reloads the page, once the new worker has taken over
            banner.click()
        expect(tid(page, "update-banner")).to_have_count(0)
        expect(tid(page, "repo-button")).to_be_visible()
        new = page.evaluate(ASK_WORKER)
        assert new["version"] != old["version"]
        assert set(new["shell"]) == shell_of(second_build)
        assert running(page) <= set(new["shell"]) - set(old["shell"])  # the page runs the second build
        kept = page.evaluate(CACHED)
        assert {name for name, _, _ in kept} == {f"dancodes-shell-{new['version']}"}  # the old cache is gone
    finally:
        deploy(home, first)


def test_a_page_already_of_the_new_build_takes_its_worker_without_asking(
    page: Page, stack: Stack, home: Path, second_build: Path
) -> None:
    """Opened after a deploy, the page comes from the network (the new build) while the old worker still
    controls it: the new worker takes over at once, no banner, no reload."""
    first = home / "builds" / "first"
    deploy(home, first)
    page.reload()
    controlled(page)
    old = page.evaluate(ASK_WORKER)
    assert set(old["shell"]) == shell_of(first)
    try:
        deploy(home, second_build)
        page.reload()
        assert running(page) <= shell_of(second_build) - shell_of(first)
        page.evaluate("() => { window.sameDocument = true; }")
        until(
            page,
            """(old) => new Promise((resolve) => {
                const channel = new MessageChannel();
                channel.port1.onmessage = (event) => resolve(event.data.version !== old);
                navigator.serviceWorker.controller.postMessage({ type: "shell" }, [channel.port2]);
            })""",
            old["version"],
        )
        assert page.evaluate("() => window.sameDocument === true")  # not reloaded
        expect(tid(page, "update-banner")).to_have_count(0)
        assert set(page.evaluate(ASK_WORKER)["shell"]) == shell_of(second_build)
    finally:
        deploy(home, first)
