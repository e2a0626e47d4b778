"""The one way a child starts: its own session, its cwd, its output piped, a clear error when it cannot."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import trio

from supervisor.errors import SpawnError
from supervisor.reaper import Reaper
from supervisor.spawn import OUTPUT_LIMIT, run, spawn


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


async def test_run_collects_the_output_and_the_status(tmp_path: Path) -> None:
    reaper = Reaper()
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        # more than a pipe holds, on both streams: a child blocked on a full pipe would never end
        script = "head -c 200000 /dev/zero; head -c 100000 /dev/zero >&2; echo 'the end' >&2; exit 3"
        done = await run(reaper, ["sh", "-c", script], env=os.environ, cwd=str(tmp_path))
        nursery.cancel_scope.cancel()
    assert done.status.code == 3
    assert len(done.stdout) == OUTPUT_LIMIT  # the end of it is kept
    assert done.stderr.endswith(b"\0the end\n")
    assert len(done.stderr) == OUTPUT_LIMIT


async def test_a_cancelled_run_kills_what_it_started(tmp_path: Path) -> None:
    reaper = Reaper()
    pidfile = tmp_path / "pid"
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        with trio.move_on_after(30) as waiting:
            async with trio.open_nursery() as runs:
                # the shell's child in its group; `wait` keeps the shell itself there too
                argv = ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]
                runs.start_soon(functools.partial(run, reaper, argv, env=os.environ))
                while not pidfile.exists() or not pidfile.read_text().strip():
                    await trio.sleep(0.01)
                runs.cancel_scope.cancel()
            sleeper = int(pidfile.read_text())
            while reaper.children:  # both exit on the kill: the reaper collects them
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert not waiting.cancelled_caught, "the run's processes outlived its cancellation"
    assert _state(sleeper) in (None, "Z")  # the shell's child too: gone, or dead until init reaps it


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2]
