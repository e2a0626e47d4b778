"""The git command line the store runs: through the daemon's reaper, with what, and its failures."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import trio

from supervisor.projects.gitcli import Command, CommandFailed, check_out, environment, through_reaper
from supervisor.reaper import Reaper
from tests.gitutil import run_here


async def test_through_the_reaper_a_worker_thread_gets_the_true_status_and_stderr(tmp_path: Path) -> None:
    reaper = Reaper()
    runner = through_reaper(reaper)
    env = {"PATH": os.environ["PATH"]}
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        failing = Command(["sh", "-c", "echo why >&2; exit 7"], env, tmp_path, None)
        done = await trio.to_thread.run_sync(runner, failing)
        killed = Command(["sh", "-c", "kill -TERM $$"], env, tmp_path, None)
        signalled = await trio.to_thread.run_sync(runner, killed)
        nursery.cancel_scope.cancel()
    assert (done.code, done.stderr) == (7, "why\n")
    assert signalled.code == -signal.SIGTERM
    assert not reaper.children


def test_git_gets_a_path_and_a_home_and_none_of_the_daemons_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("GITHUB_TOKEN", "AUTH_PASSWORD", "OPENROUTER_API_KEY", "GIT_CONFIG_GLOBAL"):
        monkeypatch.setenv(name, "secret-value")
    env = environment(tmp_path / "agent-home")
    assert env == {
        "PATH": os.environ["PATH"],
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "HOME": str(tmp_path / "agent-home"),
    }


def test_a_git_that_cannot_start_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git there
    with pytest.raises(CommandFailed, match=r"^cannot start 'git': No such file or directory$"):
        check_out(run_here, tmp_path / "gitdir", tmp_path, user=None, home=None)
