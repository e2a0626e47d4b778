"""The one way a child starts: its own session, its cwd, its output piped, a clear error when it cannot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from supervisor.errors import SpawnError
from supervisor.reaper import Reaper
from supervisor.spawn import spawn


async def read_all(stream: trio.lowlevel.FdStream) -> bytes:
    chunks = []
    async with stream:
        while data := await stream.receive_some():
            chunks.append(data)
    return b"".join(chunks)


async def test_child_runs_in_its_own_session_and_cwd(tmp_path: Path) -> None:
    reaper = Reaper()
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        child = spawn(
            reaper,
            ["sh", "-c", "pwd; ps -o sid= -p $$; echo oops >&2; exit 4"],
            env=os.environ,
            cwd=str(tmp_path),
        )
        out, err = await read_all(child.stdout), await read_all(child.stderr)
        status = await child.wait()
        nursery.cancel_scope.cancel()
    cwd, sid = out.decode().split()
    assert cwd == str(tmp_path)
    assert int(sid) == child.pid  # a session leader: a stop reaches its whole group
    assert err == b"oops\n"
    assert status.code == 4
    assert not child.alive


def test_missing_executable_and_cwd_are_clear_errors(tmp_path: Path) -> None:
    reaper = Reaper()
    with pytest.raises(SpawnError, match=r"^executable 'no-such-thing-x' not found$"):
        spawn(reaper, ["no-such-thing-x"], env=os.environ)
    with pytest.raises(SpawnError, match=r"^working directory '.*/gone' not found$"):
        spawn(reaper, ["true"], env=os.environ, cwd=str(tmp_path / "gone"))
    notexec = tmp_path / "script"
    notexec.write_text("#!/bin/sh\n")
    with pytest.raises(SpawnError, match=r"^cannot start '.*script': Permission denied$"):
        spawn(reaper, [str(notexec)], env=os.environ)
    with pytest.raises(SpawnError, match=r"^working directory '.*script': Not a directory$"):
        spawn(reaper, ["true"], env=os.environ, cwd=str(notexec))
    assert not reaper.children  # nothing registered for a child that never ran


async def test_a_child_can_be_fed_on_its_stdin() -> None:
    reaper = Reaper()
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        fed = spawn(reaper, ["cat"], env=os.environ, stdin=True)
        assert fed.stdin is not None
        async with fed.stdin:
            await fed.stdin.send_all(b"through the pipe")
        out = await read_all(fed.stdout)
        await read_all(fed.stderr)
        fed_status = await fed.wait()
        # without it, stdin is /dev/null: a reader sees its end at once, never the daemon's own stdin
        unfed = spawn(reaper, ["cat"], env=os.environ)
        assert unfed.stdin is None
        empty = await read_all(unfed.stdout)
        await read_all(unfed.stderr)
        unfed_status = await unfed.wait()
        nursery.cancel_scope.cancel()
    assert out == b"through the pipe"
    assert fed_status.success
    assert empty == b""
    assert unfed_status.success
