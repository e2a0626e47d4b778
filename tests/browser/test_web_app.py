"""The web app in a real chromium at a phone viewport, against the real daemon, opencode, Caddy and a scripted
LLM. The tests share one stack and run in order: the first one meets an empty server (no repos) and clones
`acme/rocket` through the repo picker; the others start where the phone left off (the repo remembered on the
device, its most recent chat open). They find things by the app's `data-testid` contract only."""

from __future__ import annotations

import itertools
import os
import re
import signal
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Dialog, FilePayload, Locator, Page, Route, expect

from tests.browser.conftest import shot
from tests.githttps import GitHubStandIn
from tests.gitutil import Remote, git
from tests.llm import Reply, ToolCall
from tests.stack import Stack

REPO = "acme/rocket"
ASSISTANT_TEXT = (
    '[data-testid="messages"] [data-testid="message"][data-role="assistant"] [data-testid="part-text"]'
)


def slow(stack: Stack, text: str) -> Reply:
    """Queue a reply streamed 2 characters per 0.1 s: slow enough to watch it grow, or to stop it."""
    return stack.llm.reply_text(text, chunk_size=2, delay=0.1)


@pytest.fixture(scope="module")
def remote(stack: Stack) -> Remote:
    return stack.remote(*REPO.split("/"))


@pytest.fixture(autouse=True)
def _remote(remote: Remote) -> None:
    """Every test needs the "GitHub" remote to exist."""


def tid(page: Page | Locator, name: str) -> Locator:
    return page.locator(f'[data-testid="{name}"]')


def assistant_text(page: Page) -> str:
    """All assistant text of the open chat, as shown."""
    text: str = page.evaluate(
        f"() => Array.from(document.querySelectorAll('{ASSISTANT_TEXT}')).map(e => e.textContent).join('')"
    )
    return text


def watch_growth(page: Page, full: str, timeout: float = 30.0) -> list[str]:
    """Poll the open chat's assistant text while `full` streams in; return the distinct prefixes seen."""
    seen: list[str] = []
    raw: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = assistant_text(page)
        if not raw or text != raw[-1]:
            raw.append(text)
        text = text.strip()
        if text and full.startswith(text) and (not seen or text != seen[-1]):
            seen.append(text)
        if full in text:
            break
        time.sleep(0.05)
    assert full in text, f"the reply never showed in full; what showed: {raw[-5:]!r}"
    assert len(seen) >= 3, f"the reply did not grow token by token; what showed: {raw!r}"
    return seen


def wait_for_text(page: Page) -> None:
    """Until the open chat shows some assistant text (a reply has started)."""
    page.wait_for_function(
        f"() => Array.from(document.querySelectorAll('{ASSISTANT_TEXT}')).some(e => e.textContent.trim())"
    )


def send(page: Page, text: str) -> None:
    prompt = tid(page, "prompt")
    prompt.fill(text)
    tid(page, "send").click()
    expect(tid(page, "message").filter(has_text=text).first).to_be_visible()


def open_chat_id(page: Page) -> str:
    """The id of the chat on screen (once the app knows it)."""
    messages = tid(page, "messages")
    expect(messages).to_have_attribute("data-session-id", re.compile(r".+"))
    session_id = messages.get_attribute("data-session-id")
    assert session_id
    return session_id


def open_sidebar(page: Page) -> Locator:
    sidebar = tid(page, "sidebar")
    if sidebar.get_attribute("data-open") != "true":
        page.locator('[data-testid="sidebar-toggle"]:visible').first.click()
    expect(sidebar).to_have_attribute("data-open", "true")
    return sidebar


def close_sidebar(page: Page) -> None:
    """The way a thumb does it: a tap on the dimmed page beside the open sidebar."""
    sidebar = tid(page, "sidebar")
    if sidebar.get_attribute("data-open") == "true":
        box = sidebar.bounding_box()
        viewport = page.viewport_size
        assert box is not None
        assert viewport is not None
        right = box["x"] + box["width"]
        page.touchscreen.tap((right + viewport["width"]) / 2, viewport["height"] / 2)
    expect(sidebar).to_have_attribute("data-open", "false")


def chat_item(page: Page, session_id: str) -> Locator:
    return tid(page, "sidebar").locator(f'[data-testid="chat-item"][data-session-id="{session_id}"]')


def new_chat(page: Page) -> None:
    """ "+": an empty chat, the phone's alone until its first prompt (then `open_chat_id` knows it)."""
    tid(page, "new-chat").click()
    expect(tid(page, "messages")).to_have_attribute("data-session-id", "")
    expect(tid(page, "messages")).to_contain_text(f"new chat in {REPO}: type below")
    expect(tid(page, "prompt")).to_be_focused()


def landed(page: Page) -> str:
    """Back on the phone: the remembered repo's most recent chat open (the repo has chats in every test but
    the first), the text box focused. Waiting for the chat also waits for the app to finish restoring."""
    session_id = open_chat_id(page)
    expect(tid(page, "prompt")).to_be_focused()
    expect(tid(page, "repo-picker")).to_be_hidden()
    return session_id


def on_the_server(stack: Stack) -> tuple[set[str], set[str]]:
    """The ids of every session opencode holds, and of every chat the daemon holds a worktree for."""
    with stack.signed_in() as client:
        sessions = client.get("/experimental/session", params={"limit": 100_000, "archived": "true"})
        worktrees = client.get("/admin/worktrees")
    assert sessions.status_code == 200, sessions.text
    assert worktrees.status_code == 200, worktrees.text
    return {s["id"] for s in sessions.json()}, {w["session_id"] for w in worktrees.json()["worktrees"]}


def worktree_of(stack: Stack, session_id: str) -> Path:
    return stack.daemon.data_dir / "projects" / "worktrees" / f"acme__rocket__{session_id}"


WATCH_THE_PROMPT = """(text) => {
    // what showed while `text` went out: each progress line; whether it showed before its chat existed
    window.__seen = {progress: [], onDraft: false};
    const check = () => {
        const seen = window.__seen;
        const line = document.querySelector('[data-testid="progress"]');
        const last = seen.progress[seen.progress.length - 1];
        if (line && last !== line.textContent) seen.progress.push(line.textContent);
        const pending = document.querySelectorAll('[data-testid="message"][data-pending="true"]');
        const shown = document.querySelector('[data-testid="messages"]');
        const draft = shown.getAttribute('data-session-id') === '';
        if (draft && Array.from(pending).some((m) => m.textContent.includes(text))) seen.onDraft = true;
    };
    const options = {subtree: true, childList: true, attributes: true, characterData: true};
    new MutationObserver(check).observe(document.body, options);
}"""


# ------------------------------------------------------------------------------------------------ the tests


def test_first_visit_clone_send_stream_and_tool(page: Page, stack: Stack) -> None:
    # no last-used repo, no repo on disk: the repo picker, and nothing cloned by itself
    picker = tid(page, "repo-picker")
    expect(picker).to_be_visible()
    expect(tid(picker, "repo-item")).to_have_count(0)
    shot(page, "01-repo-picker-empty")

    tid(page, "clone-input").fill(REPO)
    tid(page, "clone-button").click()
    # the clone shows up in the list, or the picker takes it as the choice at once: both are fine
    item = tid(picker, "repo-item").and_(page.locator(f'[data-repo="{REPO}"]'))
    expect(item.or_(page.locator('[data-testid="prompt"]:focus'))).to_be_visible(timeout=60_000)
    if picker.is_visible():
        shot(page, "02-repo-picker-cloned")
        item.click()
    expect(picker).to_be_hidden()
    expect(tid(page, "repo-button")).to_contain_text("rocket")
    expect(tid(page, "prompt")).to_be_focused()
    shot(page, "03-empty-chat")

    streamed = "Looking at the rocket: the README names it, and a quick shell check follows now."
    stack.llm.reply(
        Reply(
            text=streamed,
            tool_calls=[ToolCall("bash", {"command": "echo tool-$((6*7))-out", "description": "check"})],
            chunk_size=2,
            delay=0.1,
        )
    )
    stack.llm.reply_text("All done, the shell said so.")
    send(page, "look at the rocket please")
    assert (
        tid(page, "message").filter(has_text="look at the rocket please").get_attribute("data-role") == "user"
    )

    seen = watch_growth(page, streamed)
    assert all(len(a) < len(b) for a, b in itertools.pairwise(seen)), seen
    shot(page, "04-streaming")

    tool = page.locator('[data-testid="part-tool"][data-tool="bash"]')
    expect(tool).to_contain_text("tool-42-out")  # the command's output, not just its text
    expect(tid(page, "messages")).to_contain_text("All done, the shell said so.")
    assert stack.llm.chat_requests()[1].tool_results == ["tool-42-out\n"]
    session_id = open_chat_id(page)
    sidebar = open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "idle")
    shot(page, "05-sidebar")
    close_sidebar(page)
    expect(sidebar).to_have_attribute("data-open", "false")
    shot(page, "06-chat-with-tool")


def test_two_chats_at_once(page: Page, stack: Stack) -> None:
    landed(page)
    stack.llm.reply_text("alpha answer, for the first chat only", when="task-alpha")
    stack.llm.reply_text("beta answer, for the second chat only", when="task-beta")
    stack.llm.hold()  # both turns stay busy after their first chunk

    new_chat(page)
    send(page, "task-alpha: do the first thing")
    stack.llm.wait_for_requests(1)
    alpha = open_chat_id(page)

    new_chat(page)
    send(page, "task-beta: do the second thing")
    stack.llm.wait_for_requests(2)
    beta = open_chat_id(page)
    assert alpha != beta

    open_sidebar(page)
    expect(chat_item(page, alpha)).to_have_attribute("data-status", "busy")
    expect(chat_item(page, beta)).to_have_attribute("data-status", "busy")
    shot(page, "07-sidebar-two-busy")

    stack.llm.release()
    expect(chat_item(page, alpha)).to_have_attribute("data-status", "idle")
    expect(chat_item(page, beta)).to_have_attribute("data-status", "idle")

    chat_item(page, alpha).click()
    expect(tid(page, "messages")).to_have_attribute("data-session-id", alpha)
    expect(tid(page, "messages")).to_contain_text("alpha answer, for the first chat only")
    expect(tid(page, "messages")).not_to_contain_text("beta answer")

    open_sidebar(page)
    chat_item(page, beta).click()
    expect(tid(page, "messages")).to_have_attribute("data-session-id", beta)
    expect(tid(page, "messages")).to_contain_text("beta answer, for the second chat only")
    expect(tid(page, "messages")).not_to_contain_text("alpha answer")


def test_stop_aborts_a_running_reply(page: Page, stack: Stack) -> None:
    landed(page)
    long = "This reply is long and slow so that it can be stopped halfway through. " * 6
    slow(stack, long)
    new_chat(page)
    send(page, "write a long answer")
    wait_for_text(page)
    session_id = open_chat_id(page)

    tid(page, "stop").click()
    request = stack.llm.wait_for_requests(1)[0]
    assert request.finished.wait(30), "the LLM request did not end after stop"
    assert request.disconnected, "opencode did not hang up on the LLM"
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "idle")
    close_sidebar(page)

    stopped = assistant_text(page)
    time.sleep(1.0)  # 10 more chunks would have arrived by now
    assert assistant_text(page) == stopped
    assert long.startswith(stopped.strip()) or not stopped.strip()
    assert len(stopped) < len(long)
    shot(page, "08-stopped")


def test_reload_restores_repo_and_most_recent_chat(page: Page, stack: Stack) -> None:
    landed(page)
    stack.llm.reply_text("remember this chat after a reload")
    new_chat(page)
    send(page, "a chat to come back to")
    expect(tid(page, "messages")).to_contain_text("remember this chat after a reload")
    session_id = open_chat_id(page)

    page.reload()
    landed(page)
    expect(tid(page, "messages")).to_have_attribute("data-session-id", session_id)
    expect(tid(page, "messages")).to_contain_text("remember this chat after a reload")
    expect(tid(page, "repo-button")).to_contain_text("rocket")


def test_plus_makes_nothing_until_the_first_prompt_makes_one_chat(page: Page, stack: Stack) -> None:
    last = landed(page)
    sessions, worktrees = on_the_server(stack)
    asked: list[str] = []  # what the page asked of the server, beyond reading
    # (the app's visibility beats, POST /admin/push/presence, keep nothing: they are not counted)
    page.on(
        "request",
        lambda r: (
            asked.append(f"{r.method} {r.url}")
            if r.method != "GET" and not r.url.endswith("/admin/push/presence")
            else None
        ),
    )

    new_chat(page)
    new_chat(page)
    # an empty chat is the phone's alone: a reload forgets it and brings back the last real chat
    page.reload()
    assert landed(page) == last
    new_chat(page)
    new_chat(page)
    assert asked == []

    text = "one chat, made by its first prompt"
    page.evaluate(WATCH_THE_PROMPT, text)
    full = "The first prompt made this chat, and its reply streams in."
    slow(stack, full)
    tid(page, "prompt").fill(text)
    tid(page, "send").click()
    expect(tid(page, "message").filter(has_text=text)).to_be_visible()
    expect(tid(page, "prompt")).to_have_value("")
    watch_growth(page, full)
    seen = page.evaluate("() => window.__seen")
    assert seen["onDraft"], f"the prompt showed only once its chat was made; progress lines: {seen}"
    assert "making the chat's worktree…" in seen["progress"], seen
    expect(tid(page, "message").filter(has_text=text)).to_have_count(1)  # opencode's copy took its place
    expect(page.locator('[data-pending="true"]')).to_have_count(0)
    expect(tid(page, "progress")).to_have_count(0)

    session_id = open_chat_id(page)
    assert session_id != last
    sessions_now, worktrees_now = on_the_server(stack)
    assert (sessions_now - sessions, sessions - sessions_now) == ({session_id}, set())
    assert (worktrees_now - worktrees, worktrees - worktrees_now) == ({session_id}, set())
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "idle")
    shot(page, "08b-first-prompt-made-the-chat")
    close_sidebar(page)


def test_a_first_prompt_whose_worktree_fails_keeps_its_text_and_leaves_nothing(
    page: Page, stack: Stack, remote: Remote
) -> None:
    landed(page)
    sessions, worktrees = on_the_server(stack)
    new_chat(page)
    notes: FilePayload = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"the rocket is red\n"}
    tid(page, "attach").set_input_files(notes)
    expect(tid(page, "attachment")).to_have_count(1)
    text = "a prompt that must not be lost"
    notice = page.locator(".notice")
    away = remote.bare.with_name("rocket.git.away")
    remote.bare.rename(away)  # "GitHub" lost the repo: the worktree's fetch fails
    try:
        tid(page, "prompt").fill(text)
        tid(page, "send").click()
        expect(notice).to_contain_text("could not make the chat's worktree: ")
    finally:
        away.rename(remote.bare)
    line = notice.inner_text()
    assert "acme/rocket" in line, line
    assert len(line.strip().splitlines()) == 1, line
    expect(tid(page, "prompt")).to_have_value(text)
    expect(tid(page, "attachment")).to_have_count(1)
    expect(tid(page, "message")).to_have_count(0)  # the pending prompt went back to the box
    expect(tid(page, "messages")).to_have_attribute("data-session-id", "")  # still the empty chat
    shot(page, "08c-worktree-failed")
    # the session made for it is gone (deleted before the line showed), and no worktree is left
    assert on_the_server(stack) == (sessions, worktrees)

    # the same text, sent again: a chat this time
    stack.llm.reply_text("made on the second try")
    tid(page, "send").click()
    expect(tid(page, "messages")).to_contain_text("made on the second try")
    expect(tid(page, "attachment")).to_have_count(0)
    expect(tid(page, "prompt")).to_have_value("")
    session_id = open_chat_id(page)
    sessions_now, worktrees_now = on_the_server(stack)
    assert (sessions_now - sessions, worktrees_now - worktrees) == ({session_id}, {session_id})


def test_opencode_killed_mid_reply_recovers_without_reload(page: Page, stack: Stack) -> None:
    landed(page)
    long = "A reply that opencode will not live to finish, streamed slowly on purpose. " * 4
    slow(stack, long)
    new_chat(page)
    send(page, "start something long")
    wait_for_text(page)
    session_id = open_chat_id(page)
    page.evaluate(
        """() => {
            window.__staleSeen = false;
            const check = () => {
                if (document.querySelector('[data-testid="stale-banner"]')) window.__staleSeen = true;
            };
            const options = {subtree: true, childList: true, attributes: true};
            new MutationObserver(check).observe(document.body, options);
        }"""
    )

    old = stack.daemon.service("opencode")["pid"]
    os.kill(old, signal.SIGKILL)
    stack.daemon.wait_for(
        lambda: (s := stack.daemon.service("opencode"))["state"] == "running" and s["pid"] != old,
        60,
        "opencode restarted",
    )
    page.wait_for_function("() => window.__staleSeen === true")
    shot(page, "09-stale")
    expect(tid(page, "stale-banner")).to_have_count(0)
    expect(tid(page, "messages")).to_have_attribute("data-session-id", session_id)
    # the cut turn is marked, and can be continued with one tap
    expect(tid(page, "chat-interrupted")).to_contain_text("opencode stopped before this reply finished")
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "interrupted")
    close_sidebar(page)

    stack.llm.reset()
    slow(stack, "back after the restart, and streaming again")
    tid(page, "continue").click()
    expect(tid(page, "chat-interrupted")).to_have_count(0)
    expect(tid(page, "messages")).to_contain_text("back after the restart, and streaming again")
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "idle")
    shot(page, "10-recovered")


def test_model_output_is_text_never_html(page: Page, stack: Stack) -> None:
    landed(page)
    payload = (
        "Careful: <img src=x onerror=window.__xss=1> and <script>window.__xss=2</script>"
        " <svg onload=window.__xss=3></svg>\n\n"
        "A [markdown link](javascript:window.__xss=4), an ![image](x) and "
        '<a href="javascript:window.__xss=5">a raw link</a>.\n\n'
        "```html\n<iframe src=javascript:window.__xss=6></iframe>\n```\n\nthe end."
    )
    stack.llm.reply_text(payload)
    new_chat(page)
    send(page, "say something dangerous")
    messages = tid(page, "messages")
    expect(messages).to_contain_text("the end.")
    expect(messages).to_contain_text("<img src=x onerror=window.__xss=1>")
    expect(messages).to_contain_text("<script>window.__xss=2</script>")
    expect(messages).to_contain_text("<iframe src=javascript:window.__xss=6></iframe>")  # code stays code
    for tag in ("img", "script", "svg", "iframe", "a[href^='javascript' i]"):
        expect(messages.locator(tag)).to_have_count(0)
    link = messages.get_by_text("markdown link")
    expect(link).to_be_visible()
    link.click()  # whatever is left of the link must not run script
    time.sleep(0.5)  # an error handler of a broken image would have run by now
    assert page.evaluate("() => window.__xss") is None
    shot(page, "11-untrusted-output")


def test_an_edit_shows_its_diff_and_collapses(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    stack.llm.reply_text("Ready to edit.")
    send(page, "get ready to edit")  # the first prompt makes the chat and its worktree
    expect(tid(page, "messages")).to_contain_text("Ready to edit.")
    session_id = open_chat_id(page)
    readme = stack.daemon.data_dir / "projects" / "worktrees" / f"acme__rocket__{session_id}" / "README.md"
    stack.llm.reply_tool_call("read", {"filePath": str(readme)})  # opencode edits only files read before
    stack.llm.reply_tool_call(
        "edit", {"filePath": str(readme), "oldString": "# rocket", "newString": "# rocket ship"}
    )
    stack.llm.reply_text("Renamed it.")
    send(page, "rename the rocket")
    expect(tid(page, "messages")).to_contain_text("Renamed it.")
    assert readme.read_text() == "# rocket ship\n"  # the edit ran in the chat's worktree

    tool = page.locator('[data-testid="part-tool"][data-tool="edit"]')
    expect(tool).to_have_attribute("data-state", "completed")
    expect(tool.locator(".diff .del")).to_have_text("-# rocket\n")
    expect(tool.locator(".diff .add")).to_have_text("+# rocket ship\n")
    expect(tid(page, "messages")).to_contain_text("changed: README.md")  # relative to the worktree
    shot(page, "12-edit-diff")
    tool.locator(".tool-head").click()  # tap to collapse, tap again to see it all
    expect(tool.locator(".diff")).to_have_count(0)
    tool.locator(".tool-head").click()
    expect(tool.locator(".diff .add")).to_be_visible()


def test_a_failed_command_looks_failed(page: Page, stack: Stack) -> None:
    """opencode marks the bash tool completed whatever the command's exit status; the app shows it."""
    landed(page)
    new_chat(page)
    stack.llm.reply_tool_call(
        "bash", {"command": "echo partial; ls /nonexistent-dir; exit 3", "description": "x"}
    )
    stack.llm.reply_tool_call("bash", {"command": "echo fine", "description": "y"})
    stack.llm.reply_text("Tried both.")
    send(page, "try the two commands")
    expect(tid(page, "messages")).to_contain_text("Tried both.")
    tools = page.locator('[data-testid="part-tool"][data-tool="bash"]')
    expect(tools).to_have_count(2)
    failed, fine = tools.nth(0), tools.nth(1)
    expect(failed).to_have_attribute("data-exit", "3")
    expect(failed).to_have_class(re.compile(r"\bfailed\b"))
    expect(failed.locator(".tool-head")).to_contain_text("exit 3")
    expect(failed.locator(".exit")).to_have_text("exit status 3")
    expect(fine).to_have_attribute("data-exit", "0")
    expect(fine).not_to_have_class(re.compile(r"\bfailed\b"))
    shot(page, "14-failed-command")


def test_the_chat_menu_shows_the_diff_commits_pushes_opens_the_pr_and_deletes(
    page: Page, stack: Stack, remote: Remote, github: GitHubStandIn
) -> None:
    landed(page)
    new_chat(page)
    stack.llm.reply_tool_call("bash", {"command": "printf 'one\\ntwo\\n' > menu.txt", "description": "w"})
    stack.llm.reply_text("Wrote menu.txt.")
    send(page, "write the menu file")
    expect(tid(page, "messages")).to_contain_text("Wrote menu.txt.")
    session_id = open_chat_id(page)

    tid(page, "chat-menu-button").click()
    menu = tid(page, "chat-menu")
    expect(tid(menu, "branch-name")).to_have_text(f"dancodes/{session_id}")
    tid(menu, "show-diff").click()
    files = tid(menu, "diff-file")
    expect(files).to_have_count(1)
    expect(files.first).to_contain_text("menu.txt")
    expect(files.first).to_contain_text("+2 -0")
    files.first.click()  # the file's patch, under it
    expect(menu.locator(".diff-patch")).to_contain_text("+two")
    shot(page, "15-chat-menu-diff")

    notice = page.locator(".notice")
    tid(menu, "commit").click()
    expect(notice).to_contain_text("committed")
    tid(menu, "push").click()
    expect(notice).to_contain_text(f"pushed dancodes/{session_id}")
    pushed = git(remote.bare, "show", f"refs/heads/dancodes/{session_id}:menu.txt")
    assert pushed == "one\ntwo"

    # open PR: the daemon asks GitHub's API (the stand-in), with the token, for the chat's branch: a link
    tid(menu, "open-pr").click()
    link = tid(menu, "pr-link")
    expect(link).to_be_visible()
    assert len(github.pulls) == 1
    pull = github.pulls[0]
    expect(link).to_have_text(f"PR #{pull.number}")
    expect(link).to_have_attribute("href", pull.url)
    expect(notice).to_contain_text(f"opened PR #{pull.number}")
    assert (pull.owner, pull.name) == ("acme", "rocket")
    assert (pull.body["head"], pull.body["base"]) == (f"dancodes/{session_id}", "main")
    posts = [s for s in github.seen if (s.method, s.path) == ("POST", "/api/repos/acme/rocket/pulls")]
    assert posts
    assert all(s.authorized for s in posts)
    shot(page, "15b-chat-menu-pr")
    # again: the open one, not a second
    tid(menu, "open-pr").click()
    expect(notice).to_contain_text(f"already open: PR #{pull.number}")
    assert len(github.pulls) == 1

    # rename: opencode's own title, shown in the sidebar
    page.once("dialog", lambda dialog: dialog.accept("Menu chat"))
    tid(menu, "rename-chat").click()
    expect(notice).to_contain_text("renamed")
    with stack.signed_in() as client:
        directory = str(stack.daemon.data_dir / "projects" / "worktrees" / f"acme__rocket__{session_id}")
        seen = client.get(f"/session/{session_id}", headers={"x-opencode-directory": directory}).json()
    assert seen["title"] == "Menu chat"
    expect(page.locator(f'[data-testid="chat-item"][data-session-id="{session_id}"]')).to_contain_text(
        "Menu chat"
    )

    # the transcript, as markdown, on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tid(menu, "copy-transcript").click()
    expect(notice).to_contain_text("transcript copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("# Menu chat\n")
    assert "write the menu file" in copied
    assert "$ printf" in copied

    page.once("dialog", lambda dialog: dialog.accept())  # "Delete the chat … and its worktree?"
    tid(menu, "delete-chat").click()
    expect(tid(page, "chat-menu")).to_have_count(0)
    expect(page.locator(f'[data-testid="chat-item"][data-session-id="{session_id}"]')).to_have_count(0)
    worktree = stack.daemon.data_dir / "projects" / "worktrees" / f"acme__rocket__{session_id}"
    assert not worktree.exists()


def test_deleting_a_chat_with_unpushed_work_asks_again_then_backs_it_up(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    commit = "echo keep > keep.txt && git add keep.txt && git commit -q -m 'keep this' && echo committed"
    stack.llm.reply_tool_call("bash", {"command": commit, "description": "c"})
    stack.llm.reply_text("Committed keep.txt, not pushed.")
    send(page, "commit a file and do not push")
    expect(tid(page, "messages")).to_contain_text("Committed keep.txt, not pushed.")
    session_id = open_chat_id(page)
    # the reply shows as it streams: the turn is over once the daemon says so (a running chat is not deleted)
    item = page.locator(f'[data-testid="chat-item"][data-session-id="{session_id}"]')
    expect(item).to_have_attribute("data-status", "idle")
    worktree = worktree_of(stack, session_id)
    head = git(worktree, "rev-parse", "HEAD")
    assert git(worktree, "log", "-1", "--format=%s") == "keep this"

    tid(page, "chat-menu-button").click()
    menu = tid(page, "chat-menu")
    notice = page.locator(".notice")
    asked: list[str] = []

    def yes_then_no(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if len(asked) == 1:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", yes_then_no)
    tid(menu, "delete-chat").click()
    expect(notice).to_contain_text("kept")
    page.remove_listener("dialog", yes_then_no)
    assert len(asked) == 2, asked
    assert asked[0].startswith("Delete the chat")
    assert "commit" in asked[1], asked[1]  # the daemon's 409: what is at risk
    assert asked[1].endswith("Back it up and delete it anyway?"), asked[1]
    assert worktree.is_dir()
    assert git(worktree, "rev-parse", "HEAD") == head
    expect(chat_item(page, session_id)).to_have_count(1)
    shot(page, "15c-delete-unpushed-kept")

    page.on("dialog", lambda dialog: dialog.accept())
    tid(menu, "delete-chat").click()
    expect(notice).to_contain_text("chat deleted")
    expect(chat_item(page, session_id)).to_have_count(0)
    assert not worktree.exists()
    clone = stack.daemon.data_dir / "projects" / "repos" / "acme__rocket"
    backup = f"refs/dancodes/backup/{session_id}/worktree"
    git(clone, "merge-base", "--is-ancestor", head, backup)  # the commit is kept (raises if not)


def png(width: int, height: int) -> bytes:
    """A real PNG of one grey, made here (no image library needed)."""
    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_a_photo_is_made_smaller_sent_and_shown_and_bad_files_are_refused(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    attach = tid(page, "attach")
    notice = page.locator(".notice")

    attach.set_input_files({"name": "app.zip", "mimeType": "application/zip", "buffer": b"PK\x03\x04"})
    expect(notice).to_contain_text("app.zip: only photos and text files can be attached")
    huge: FilePayload = {"name": "huge.jpg", "mimeType": "image/jpeg", "buffer": b"\xff" * (30 << 20)}
    attach.set_input_files(huge)
    expect(notice).to_contain_text("huge.jpg is 30.0 MB: at most 25.0 MB")
    expect(tid(page, "attachment")).to_have_count(0)

    attach.set_input_files({"name": "board.png", "mimeType": "image/png", "buffer": png(3000, 1000)})
    expect(tid(page, "attachment")).to_have_count(1)
    thumb = tid(page, "attachment").locator("img")
    expect(thumb).to_have_attribute("alt", "board.jpg")
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [2048, 683]  # made smaller here
    stack.llm.reply_text("A grey board.")
    send(page, "what is on the photo?")
    expect(tid(page, "messages")).to_contain_text("A grey board.")
    shown = tid(page, "part-image")
    expect(shown).to_have_count(1)
    expect(shown).to_have_js_property("complete", True)
    width, height = shown.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert 0 < width <= 2048  # as opencode keeps it (it may make it smaller still)
    assert round(width / height) == 3
    expect(tid(page, "attachment")).to_have_count(0)  # sent: the tray is empty
    shot(page, "16-photo")


def test_a_failed_reply_shows_as_an_error(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    stack.llm.reply_error(400, "the scripted model refuses this one")
    send(page, "this will fail")
    expect(page.locator(".msg-error")).to_contain_text("the scripted model refuses this one")
    session_id = open_chat_id(page)
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "error")
    shot(page, "13-failed-reply")
    close_sidebar(page)


def swipe(page: Page, x0: float, x1: float, y: float) -> None:
    """A one-finger horizontal swipe, as real touch events (CDP), in about 0.1 s."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y}]})
        for i in range(1, 6):
            point = {"x": x0 + (x1 - x0) * i / 5, "y": y}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
            time.sleep(0.02)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        cdp.detach()


def test_sidebar_opens_and_closes_by_button_and_swipe(page: Page) -> None:
    landed(page)
    sidebar = tid(page, "sidebar")
    expect(sidebar).to_have_attribute("data-open", "false")
    swipe(page, 30, 300, 400)
    expect(sidebar).to_have_attribute("data-open", "true")
    swipe(page, 300, 30, 400)
    expect(sidebar).to_have_attribute("data-open", "false")
    open_sidebar(page)
    close_sidebar(page)


def test_top_bar_pickers_and_screens(page: Page, stack: Stack) -> None:
    landed(page)
    expect(tid(page, "version")).to_have_text(re.compile(r"\S"))
    link = tid(page, "opencode-link")
    href = link.get_attribute("href")
    assert href
    assert page.request.get(href if "://" in href else f"{stack.url}{href}").ok
    expect(tid(page, "model-picker")).to_contain_text(re.compile(r"Scripted model|scripted|\bm\b"))
    expect(tid(page, "mode-picker")).to_contain_text("build")
    shot(page, "12-top-bar")

    tid(page, "repo-button").click()
    picker = tid(page, "repo-picker")
    expect(picker).to_be_visible()
    expect(tid(picker, "repo-item").and_(page.locator(f'[data-repo="{REPO}"]'))).to_be_visible()
    shot(page, "13-repo-picker")

    # the login page itself, in a context of its own without the cookie
    browser = page.context.browser
    assert browser is not None
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        login = context.new_page()
        login.goto(f"{stack.url}/")
        expect(login.locator("input[name=password]")).to_be_visible()
        shot(login, "00-login")
    finally:
        context.close()


TICKS = "".join(f"tick {i} " for i in range(40)).strip()


def held_mid_reply(page: Page, stack: Stack, prompt: str) -> str:
    """A new chat whose reply streams its first chunk and then waits (the LLM holds it): a chat surely in
    the middle of a reply. Returns its id; `stack.llm.release()` lets the rest come."""
    new_chat(page)
    stack.llm.hold()
    stack.llm.reply_text(TICKS, chunk_size=7)
    send(page, prompt)
    expect(page.locator(ASSISTANT_TEXT).first).to_contain_text("tick 0")
    return open_chat_id(page)


def test_reloading_mid_reply_shows_every_chunk_from_the_first(page: Page, stack: Stack) -> None:
    """opencode stores a text part empty until it ends: the reply so far comes from the daemon."""
    landed(page)
    try:
        session_id = held_mid_reply(page, stack, "count for me")
        page.reload()
        landed(page)
        expect(tid(page, "messages")).to_have_attribute("data-session-id", session_id)
        expect(page.locator(ASSISTANT_TEXT).first).to_contain_text("tick 0")  # still held: from the daemon
        expect(tid(page, "chat-status")).to_have_attribute("data-status", "busy")
    finally:
        stack.llm.release()
    expect(page.locator(ASSISTANT_TEXT).first).to_have_text(TICKS)  # then live, each chunk once


def test_switching_away_and_back_mid_reply_shows_every_chunk(page: Page, stack: Stack) -> None:
    first = landed(page)
    try:
        session_id = held_mid_reply(page, stack, "count again")
        open_sidebar(page)
        chat_item(page, first).click()
        expect(tid(page, "messages")).to_have_attribute("data-session-id", first)
        stack.llm.release()  # the rest streams while another chat is on screen
        open_sidebar(page)
        expect(chat_item(page, session_id)).to_have_attribute("data-status", "idle")
        expect(chat_item(page, session_id)).to_have_attribute("data-unread", "true")  # it ended unseen
        expect(page).to_have_title(re.compile(r"^\(\d+\) dancodes$"))
        chat_item(page, session_id).click()
    finally:
        stack.llm.release()
    expect(tid(page, "messages")).to_have_attribute("data-session-id", session_id)
    expect(page.locator(ASSISTANT_TEXT).first).to_have_text(TICKS)
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-unread", "false")
    close_sidebar(page)


def test_a_provider_that_is_down_shows_retrying_with_its_message(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    stack.llm.reply_error(503, "the provider is over capacity")
    stack.llm.reply_text("Answered once it came back.")
    send(page, "are you there?")
    status = tid(page, "chat-status")
    expect(status).to_have_attribute("data-status", "retry")
    expect(status).to_contain_text("the provider is over capacity")
    expect(status).to_contain_text("attempt 1")
    session_id = open_chat_id(page)
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_have_attribute("data-status", "retry")
    expect(chat_item(page, session_id)).to_contain_text("retrying")
    shot(page, "20-provider-retry")
    close_sidebar(page)
    expect(tid(page, "messages")).to_contain_text("Answered once it came back.")
    expect(tid(page, "chat-status")).to_have_count(0)


def test_a_permission_the_agent_asks_for_is_answered_from_the_phone(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    stack.llm.reply_tool_call("bash", {"command": "echo may-i push", "description": "ask first"})
    stack.llm.reply_text("It was allowed.")
    send(page, "ask before you run it")
    status = tid(page, "chat-status")
    expect(status).to_have_attribute("data-status", "waiting")
    expect(status).to_contain_text("waiting for you")
    ask = tid(page, "ask")
    expect(ask).to_contain_text("bash: echo may-i push")
    session_id = open_chat_id(page)
    open_sidebar(page)
    expect(chat_item(page, session_id)).to_contain_text("waiting for you")
    close_sidebar(page)
    page.reload()  # what it asks is found again after a reload
    landed(page)
    expect(tid(page, "ask")).to_contain_text("bash: echo may-i push")
    shot(page, "21-permission")
    tid(page, "ask-once").click()
    expect(tid(page, "messages")).to_contain_text("It was allowed.")
    expect(tid(page, "ask")).to_have_count(0)


# ------------------------------------------------------------------ drafts, the outbox, the swallowed prompt

QUEUED = '[data-testid="message"][data-pending="true"][data-phase="queued"]'


def queued(page: Page, text: str) -> Locator:
    """The prompt `text` waiting on the phone (shown as queued, not as sending)."""
    return page.locator(QUEUED).filter(has_text=text)


OUTBOX_KEYS = "Object.keys(localStorage).filter((k) => k.startsWith('dancodes.outbox.'))"


def outbox(page: Page) -> list[dict[str, Any]]:
    """The prompts the phone keeps waiting to be sent (its localStorage: one key each), in the order sent."""
    items: list[dict[str, Any]] = page.evaluate(
        f"() => {OUTBOX_KEYS}.map((k) => JSON.parse(localStorage.getItem(k)))"
        ".sort((a, b) => a.created - b.created)"
    )
    return items


def outbox_emptied(page: Page) -> None:
    """Until the phone keeps no prompt waiting: each went out (or came back to its box)."""
    page.wait_for_function(f"() => {OUTBOX_KEYS}.length === 0")


def opencode_messages(stack: Stack, session_id: str) -> list[dict[str, Any]]:
    """The chat's messages as opencode stores them, asked through the stack with a signed-in client."""
    with stack.signed_in() as client:
        response = client.get(
            f"/session/{session_id}/message", params={"directory": str(worktree_of(stack, session_id))}
        )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()
    return messages


def texts(message: dict[str, Any]) -> list[str]:
    return [p["text"] for p in message["parts"] if p["type"] == "text" and not p.get("synthetic")]


def prompts_with(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The user messages that hold `text`."""
    return [m for m in messages if m["info"]["role"] == "user" and any(text in t for t in texts(m))]


def answers_to(messages: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    return [
        m for m in messages if m["info"]["role"] == "assistant" and m["info"].get("parentID") == message_id
    ]


def llm_prompts_with(stack: Stack, text: str) -> int:
    """How many turns the LLM was asked to answer `text` as the user's last word."""
    return sum(1 for r in stack.llm.chat_requests() if text in r.last_user_text)


def another_chat(page: Page, than: str) -> str:
    """The id of a chat in the sidebar other than `than` (the sidebar left closed)."""
    sidebar = open_sidebar(page)
    ids = [item.get_attribute("data-session-id") for item in tid(sidebar, "chat-item").all()]
    close_sidebar(page)
    return next(i for i in ids if i and i != than)


def go_to_chat(page: Page, session_id: str) -> None:
    open_sidebar(page)
    chat_item(page, session_id).click()
    expect(tid(page, "messages")).to_have_attribute("data-session-id", session_id)


def test_a_draft_per_chat_survives_a_reload(page: Page, stack: Stack) -> None:
    a = landed(page)
    b = another_chat(page, a)
    prompt = tid(page, "prompt")
    prompt.press_sequentially("half a thought for A")
    go_to_chat(page, b)
    expect(prompt).to_have_value("")  # what was typed for A never shows in B
    prompt.press_sequentially("and one for B")
    new_chat(page)
    expect(prompt).to_have_value("")
    prompt.press_sequentially("the first words of a new chat")
    go_to_chat(page, a)
    expect(prompt).to_have_value("half a thought for A")

    page.reload()
    assert landed(page) == a
    expect(prompt).to_have_value("half a thought for A")
    go_to_chat(page, b)
    expect(prompt).to_have_value("and one for B")
    new_chat(page)
    expect(prompt).to_have_value("the first words of a new chat")
    shot(page, "17-draft-of-a-new-chat")
    # nothing of it went anywhere
    assert llm_prompts_with(stack, "half a thought") == 0
    # the next tests start with empty boxes
    prompt.fill("")
    go_to_chat(page, a)
    prompt.fill("")
    go_to_chat(page, b)
    prompt.fill("")
    assert page.evaluate("() => localStorage.getItem('dancodes.drafts')") is None


def test_a_prompt_sent_offline_waits_on_the_phone_then_goes_exactly_once(page: Page, stack: Stack) -> None:
    session_id = landed(page)
    text = "written in a tunnel, sent once the network is back"
    stack.llm.reply_text("answered after the tunnel")
    page.context.set_offline(True)
    try:
        tid(page, "prompt").fill(text)
        tid(page, "send").click()
        item = queued(page, text)
        expect(item).to_be_visible()
        expect(tid(item, "progress")).to_contain_text("offline")
        expect(tid(page, "prompt")).to_have_value("")
        shot(page, "18-queued-offline")
        # a second thought, taken back before it could go: back in the box, and never sent
        second = "on second thought, never mind this one"
        tid(page, "prompt").fill(second)
        tid(page, "send").click()
        expect(queued(page, second)).to_be_visible()
        assert [i["text"] for i in outbox(page)] == [text, second]  # kept on the phone, for a reload
        tid(queued(page, second), "unqueue").click()
        expect(queued(page, second)).to_have_count(0)
        expect(tid(page, "prompt")).to_have_value(second)
        assert [i["text"] for i in outbox(page)] == [text]
        assert llm_prompts_with(stack, text) == 0
    finally:
        page.context.set_offline(False)

    expect(tid(page, "messages")).to_contain_text("answered after the tunnel")
    expect(page.locator('[data-pending="true"]')).to_have_count(0)
    outbox_emptied(page)
    messages = opencode_messages(stack, session_id)
    mine = prompts_with(messages, text)
    assert len(mine) == 1, mine
    assert texts(mine[0]) == [text]  # a second send with the same id would have added its text again
    assert len(answers_to(messages, mine[0]["info"]["id"])) == 1
    assert llm_prompts_with(stack, text) == 1
    assert prompts_with(messages, second) == []
    expect(tid(page, "prompt")).to_have_value(second)
    tid(page, "prompt").fill("")


def test_a_prompt_that_reached_opencode_unheard_is_not_sent_again(page: Page, stack: Stack) -> None:
    session_id = landed(page)
    text = "opencode got this, but the phone never heard back"
    stack.llm.reply_text("answered exactly once")
    reached: list[tuple[int, str]] = []

    def answer_lost(route: Route) -> None:
        response = route.fetch()  # the prompt reaches opencode...
        body = route.request.post_data_json
        assert isinstance(body, dict)
        reached.append((response.status, body["messageID"]))
        route.abort("connectionreset")  # ...and its answer is lost on the way back

    page.route("**/prompt_async", answer_lost, times=1)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(f"{r.method} {r.url.split('?')[0]}"))
    tid(page, "prompt").fill(text)
    tid(page, "send").click()
    expect(tid(page, "messages")).to_contain_text("answered exactly once")
    outbox_emptied(page)  # the phone looked for it, found it, and let it go
    expect(page.locator('[data-pending="true"]')).to_have_count(0)

    assert len(reached) == 1, reached
    status, message_id = reached[0]
    assert status == 204
    assert re.fullmatch(r"msg_[0-9a-f]{12}[0-9A-Za-z]{14}", message_id), message_id
    posts = [a for a in asked if a.startswith("POST ") and a.endswith("/prompt_async")]
    looks = [a for a in asked if a.startswith("GET ") and a.endswith(f"/message/{message_id}")]
    assert (len(posts), len(looks)) == (1, 1), asked
    messages = opencode_messages(stack, session_id)
    mine = prompts_with(messages, text)
    assert [m["info"]["id"] for m in mine] == [message_id]
    assert texts(mine[0]) == [text]
    assert len(answers_to(messages, message_id)) == 1
    assert llm_prompts_with(stack, text) == 1


@pytest.mark.skip(reason="known race: the page that did not send may keep a stale outbox record")
def test_two_pages_of_the_app_send_a_queued_prompt_once(page: Page, stack: Stack) -> None:
    """A tab and the installed app share the phone's storage: both see the prompt, one sends it."""
    session_id = landed(page)
    text = "seen by two pages of the app, sent by one"
    stack.llm.reply_text("answered once, whichever page sent it")
    context = page.context
    context.route("**/prompt_async", lambda route: route.abort("connectionrefused"))  # unreachable
    delivered: list[str] = []  # the prompts that reached opencode (its 204), from either page
    context.on(
        "requestfinished",
        lambda r: delivered.append(r.url) if r.url.endswith("/prompt_async") and r.method == "POST" else None,
    )
    tid(page, "prompt").fill(text)
    tid(page, "send").click()
    expect(tid(queued(page, text), "progress")).to_contain_text("network error")
    other = context.new_page()
    try:
        other.goto(f"{stack.url}/")
        assert landed(other) == session_id
        expect(queued(other, text)).to_be_visible()  # the other page holds it too
        context.unroute("**/prompt_async")
        for p in (page, other):  # the network is back, for both at once
            p.evaluate("() => window.dispatchEvent(new Event('online'))")
        for p in (page, other):
            expect(p.locator('[data-testid="messages"]')).to_contain_text(
                "answered once, whichever page sent it"
            )
            expect(queued(p, text)).to_have_count(0)
        outbox_emptied(page)
    finally:
        other.close()
    # the one page that had the lock sent it; the other found it gone
    assert len(delivered) == 1, delivered
    mine = prompts_with(opencode_messages(stack, session_id), text)
    assert len(mine) == 1, mine
    assert texts(mine[0]) == [text]
    assert llm_prompts_with(stack, text) == 1


def test_a_queued_prompt_survives_a_reload_and_goes_to_its_own_chat(page: Page, stack: Stack) -> None:
    a = landed(page)
    b = another_chat(page, a)
    text = "queued for A, whatever the phone shows next"
    stack.llm.reply_text("A got it")
    page.route("**/prompt_async", lambda route: route.abort("connectionrefused"))  # the server is unreachable
    tid(page, "prompt").fill(text)
    tid(page, "send").click()
    expect(tid(queued(page, text), "progress")).to_contain_text("network error")
    shot(page, "19-queued-unreachable")

    page.reload()
    assert landed(page) == a
    expect(queued(page, text)).to_be_visible()
    go_to_chat(page, b)  # the phone moves on before the prompt can go
    expect(tid(page, "message").filter(has_text=text)).to_have_count(0)
    page.unroute("**/prompt_async")
    page.evaluate("() => window.dispatchEvent(new Event('online'))")  # the network is back
    outbox_emptied(page)
    expect(tid(page, "message").filter(has_text=text)).to_have_count(0)

    messages = opencode_messages(stack, a)
    mine = prompts_with(messages, text)
    assert len(mine) == 1, mine
    assert texts(mine[0]) == [text]
    assert prompts_with(opencode_messages(stack, b), text) == []
    go_to_chat(page, a)
    expect(tid(page, "messages")).to_contain_text("A got it")
    expect(tid(page, "message").filter(has_text=text)).to_have_count(1)


def test_a_new_chats_first_prompt_queued_over_a_reload_makes_one_chat(page: Page, stack: Stack) -> None:
    landed(page)
    sessions, worktrees = on_the_server(stack)
    new_chat(page)
    text = "the first prompt of a chat the server could not start yet"
    stack.llm.reply_text("the chat was made after all")

    def unreachable(route: Route) -> None:
        if route.request.method == "POST":  # POST /session: the server cannot be reached
            route.abort("connectionrefused")
        else:
            route.continue_()

    page.route("**/session", unreachable)
    tid(page, "prompt").fill(text)
    tid(page, "send").click()
    expect(tid(queued(page, text), "progress")).to_contain_text("could not start the chat")

    page.reload()
    # back on the new chat, where its first prompt waits
    expect(queued(page, text)).to_be_visible()
    expect(tid(page, "messages")).to_have_attribute("data-session-id", "")
    assert on_the_server(stack) == (sessions, worktrees)
    page.unroute("**/session")
    page.evaluate("() => window.dispatchEvent(new Event('online'))")  # the network is back
    expect(tid(page, "messages")).to_contain_text("the chat was made after all")
    session_id = open_chat_id(page)
    outbox_emptied(page)
    sessions_now, worktrees_now = on_the_server(stack)
    assert (sessions_now - sessions, worktrees_now - worktrees) == ({session_id}, {session_id})
    mine = prompts_with(opencode_messages(stack, session_id), text)
    assert len(mine) == 1, mine
    assert texts(mine[0]) == [text]


def test_a_refused_prompt_goes_back_to_its_own_chat_not_the_one_on_screen(page: Page, stack: Stack) -> None:
    landed(page)
    stack.llm.reply_text("a chat that will not last")
    new_chat(page)
    send(page, "a chat to lose")
    expect(tid(page, "messages")).to_contain_text("a chat that will not last")
    gone = open_chat_id(page)
    other = another_chat(page, gone)
    text = "for a chat that is gone by the time this goes out"
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.url.endswith("/prompt_async") else None)
    page.context.set_offline(True)
    try:
        tid(page, "prompt").fill(text)
        tid(page, "send").click()
        expect(queued(page, text)).to_be_visible()
        go_to_chat(page, other)
        tid(page, "prompt").fill("typed in another chat meanwhile")
        # the chat is deleted from another device
        with stack.signed_in() as client:
            deleted = client.delete(f"/session/{gone}", params={"directory": str(worktree_of(stack, gone))})
        assert deleted.status_code == 200, deleted.text
    finally:
        page.context.set_offline(False)

    notice = page.locator(".notice")
    expect(notice).to_contain_text("could not send: ")
    line = notice.inner_text()
    assert "not found" in line.lower(), line
    assert len(line.strip().splitlines()) == 1, line
    outbox_emptied(page)
    # the box on screen is untouched
    expect(tid(page, "prompt")).to_have_value("typed in another chat meanwhile")
    drafts = page.evaluate("() => JSON.parse(localStorage.getItem('dancodes.drafts'))")
    assert drafts[gone]["text"] == text  # back in its own chat's box
    assert len(posts) == 1, posts  # a refusal is not tried again
    tid(page, "prompt").fill("")


def test_a_prompt_swallowed_after_a_failed_reply_is_offered_again(page: Page, stack: Stack) -> None:
    landed(page)
    new_chat(page)
    stack.llm.reply_error(400, "the scripted model refuses this one")
    send(page, "this reply will fail")
    expect(page.locator(".msg-error")).to_contain_text("the scripted model refuses this one")
    session_id = open_chat_id(page)
    expect(tid(page, "resend")).to_have_count(0)  # a failed reply alone swallowed nothing

    # what a prompt sent in the failed turn's last moments leaves (DESIGN §6): stored, never answered. The
    # moment is too short to hit on purpose; opencode's `noReply` stores the same thing
    text = "kept by opencode, never answered"
    with stack.signed_in() as client:
        kept = client.post(
            f"/session/{session_id}/prompt_async",
            params={"directory": str(worktree_of(stack, session_id))},
            json={"noReply": True, "parts": [{"type": "text", "text": text}]},
        )
    assert kept.status_code == 204, kept.text
    expect(tid(page, "message").filter(has_text=text)).to_be_visible()
    expect(tid(page, "unanswered")).to_be_visible()
    shot(page, "20-swallowed-prompt")
    stack.llm.reply_text("answered when sent again")
    tid(page, "resend").click()
    expect(tid(page, "messages")).to_contain_text("answered when sent again")
    expect(tid(page, "resend")).to_have_count(0)

    messages = opencode_messages(stack, session_id)
    again = prompts_with(messages, text)
    assert len(again) == 2, again  # the one kept, and the one sent again
    assert answers_to(messages, again[0]["info"]["id"]) == []
    assert len(answers_to(messages, again[1]["info"]["id"])) == 1
