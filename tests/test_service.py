"""A service's restart policy, backoff and crash-loop handling, on trio's MockClock with real processes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import msgspec
import pytest
import trio
import trio.testing

from supervisor.backoff import Backoff
from supervisor.config import Probe, RestartPolicy, ServiceConfig
from supervisor.layout import search_path as venv_first
from supervisor.logs import Redactor, ServiceLog
from supervisor.reaper import Reaper
from supervisor.service import Service, State


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # Real children exit in real time; a small threshold lets their SIGCHLD arrive before virtual
    # time jumps ahead, while every sleep of the backoff itself is skipped.
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
async def reaper() -> AsyncIterator[Reaper]:
    reaper = Reaper(interval=3600)  # SIGCHLD alone must be enough
    async with trio.open_nursery() as nursery:
        await nursery.start(reaper.run)
        yield reaper
        nursery.cancel_scope.cancel()


def make_service(reaper: Reaper, argv: list[str], **restart: object) -> Service:
    policy = msgspec.convert(restart, RestartPolicy)
    config = ServiceConfig(argv=argv, probe=Probe(start_seconds=0.5), restart=policy)
    return Service(
        "crashy", config, reaper=reaper, search_path=venv_first, log=ServiceLog("crashy", 50, Redactor([]))
    )


class Transitions:
    def __init__(self, svc: Service) -> None:
        self.seen: list[tuple[float, State, str | None]] = []
        svc.on_change(lambda s: self.seen.append((trio.current_time(), s.state, s.reason)))

    def delays(self) -> list[float]:
        """Seconds from each exit (backoff) to the start that followed it."""
        out = []
        for (t0, state, _), (t1, nxt, _) in zip(self.seen, self.seen[1:], strict=False):
            if state == State.BACKOFF and nxt == State.STARTING:
                out.append(t1 - t0)
        return out


async def test_always_crashing_service_backs_off_exponentially_then_goes_fatal(
    mock_clock: trio.testing.MockClock, reaper: Reaper
) -> None:
    svc = make_service(
        reaper,
        ["sh", "-c", "echo boom >&2; exit 3"],
        backoff_initial=1.0,
        backoff_max=8.0,
        backoff_jitter=0.1,
        crash_loop_failures=6,
        crash_loop_window=1000.0,
        on_crash_loop="fatal",
    )
    seen = Transitions(svc)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.supervise)
        svc.start()
        with trio.fail_after(200):
            await svc.wait_until(lambda s: s.state == State.FATAL)
        nursery.cancel_scope.cancel()
    # first failure restarts at once; then 1, 2, 4, 8 (capped) seconds, each within 10% jitter
    delays = seen.delays()
    assert len(delays) == 4
    for got, want in zip(delays, [1.0, 2.0, 4.0, 8.0], strict=True):
        assert want * 0.9 <= got <= want * 1.1 + 0.1, delays
    assert svc.starts == 6
    assert svc.last_exit is not None
    assert svc.last_exit.code == 3
    assert svc.reason is not None
    assert svc.reason.startswith("crash loop: 6 failures in 1000s; last: exited with status 3: boom")
    assert svc.as_json()["state"] == "fatal"
    assert svc.as_json()["restarts"] == 5


async def test_crash_loop_in_slow_mode_retries_every_backoff_max(
    mock_clock: trio.testing.MockClock, reaper: Reaper
) -> None:
    svc = make_service(
        reaper,
        ["sh", "-c", "exit 1"],
        backoff_initial=0.1,
        backoff_max=120.0,
        crash_loop_failures=3,
        crash_loop_window=60.0,
        on_crash_loop="slow",
    )
    seen = Transitions(svc)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.supervise)
        svc.start()
        with trio.fail_after(1000):
            await svc.wait_until(lambda s: s.starts >= 6)
        await svc.stop()
        nursery.cancel_scope.cancel()
    delays = seen.delays()
    # 0 (first crash), 0.1, then the loop (3 failures): every backoff_max, never longer
    assert len(delays) >= 4
    assert all(abs(d - 120.0) < 1e-6 for d in delays[-3:]), delays  # virtual time: float sums only
    assert max(delays) <= 120.0 + 1e-6
    assert any("retrying every 120s" in (reason or "") for _, _, reason in seen.seen)
    assert svc.state == State.STOPPED


async def test_on_failure_policy_rests_after_a_clean_exit(
    mock_clock: trio.testing.MockClock, reaper: Reaper
) -> None:
    svc = make_service(reaper, ["sh", "-c", "exit 0"], policy="on-failure")
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.supervise)
        svc.start()
        with trio.fail_after(100):
            await svc.wait_until(lambda s: s.state == State.EXITED)
        nursery.cancel_scope.cancel()
    assert svc.starts == 1
    assert svc.reason == "exited with status 0"


async def test_missing_executable_is_a_visible_backoff_reason(
    mock_clock: trio.testing.MockClock, reaper: Reaper
) -> None:
    svc = make_service(reaper, ["no-such-binary-dancodes"], backoff_initial=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.supervise)
        svc.start()
        with trio.fail_after(100):
            await svc.wait_until(lambda s: s.state == State.BACKOFF)
        assert svc.reason == "executable 'no-such-binary-dancodes' not found"
        await svc.stop()
        nursery.cancel_scope.cancel()


async def test_stop_during_backoff_rests_at_once_and_start_skips_the_delay(
    mock_clock: trio.testing.MockClock, reaper: Reaper
) -> None:
    svc = make_service(reaper, ["sh", "-c", "exit 2"], backoff_initial=1000.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.supervise)
        svc.start()
        with trio.fail_after(100):
            await svc.wait_until(lambda s: s.state == State.BACKOFF)
            before = trio.current_time()
            await svc.stop()
        assert svc.state == State.STOPPED
        assert trio.current_time() - before < 1000
        nursery.cancel_scope.cancel()


def test_backoff_arithmetic() -> None:
    policy = RestartPolicy(
        backoff_initial=0.1,
        backoff_max=30.0,
        backoff_jitter=0.0,
        crash_loop_failures=3,
        crash_loop_window=10.0,
    )
    backoff = Backoff(policy, rng=random.Random(1))
    assert backoff.delay() == 0.0
    delays = []
    for i in range(12):
        backoff.record_failure(now=100.0 * i)  # far apart: never a crash loop
        delays.append(backoff.delay())
    assert delays[:5] == [0.0, 0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 30.0
    assert not backoff.crash_looping
    backoff.reset()
    for t in (0.0, 1.0, 2.0):
        backoff.record_failure(now=t)
    assert backoff.crash_looping
    backoff.record_failure(now=50.0)  # the window slides past the first three, but a loop stays one
    assert backoff.crash_looping
    backoff.reset()
    backoff.record_failure(now=60.0)
    backoff.record_failure(now=61.0)
    assert not backoff.crash_looping


def test_jitter_stays_within_its_fraction() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_jitter=0.25)
    backoff = Backoff(policy, rng=random.Random(7))
    backoff.consecutive = 3
    samples = [backoff.delay() for _ in range(500)]
    assert min(samples) >= 1.5
    assert max(samples) <= 2.5
    assert max(samples) - min(samples) > 0.5  # it does spread


def test_jitter_never_passes_backoff_max() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_max=4.0, backoff_jitter=0.5)
    backoff = Backoff(policy, rng=random.Random(3))
    backoff.consecutive = 10  # far past the cap
    samples = [backoff.delay() for _ in range(500)]
    assert max(samples) == 4.0  # jitter above the cap is cut to it
    assert min(samples) >= 2.0  # and below it still spreads the retries
    assert min(samples) < 3.0


def test_slow_retries_are_at_most_backoff_max() -> None:
    def slow(**restart: object) -> float:
        return Backoff(msgspec.convert(restart, RestartPolicy)).slow_delay()

    assert slow() == 30.0  # unset: backoff_max (default 30)
    assert slow(backoff_max=5.0) == 5.0
    assert slow(backoff_max=5.0, slow_retry=2.0) == 2.0
    # the config refuses slow_retry > backoff_max (test_errors); the arithmetic holds anyway
    assert slow(backoff_max=5.0, slow_retry=300.0) == 5.0


def test_measured_crash_loop_is_down_at_most_backoff_max_per_retry() -> None:
    """The measured case: 5 SIGKILLs in 8 s. Each pause the service takes before its next try."""
    policy = RestartPolicy()  # the defaults: crash loop at 5 failures in 60 s, backoff_max 30 s
    backoff = Backoff(policy, rng=random.Random(5))
    pauses = []
    for t in (0.0, 2.0, 4.0, 6.0, 8.0, 38.0, 68.0):
        backoff.record_failure(now=t)
        pauses.append(backoff.pause())
    assert backoff.crash_looping
    assert pauses[4:] == [30.0, 30.0, 30.0]
    assert max(pauses) <= policy.backoff_max
