"""The contract check: does a candidate opencode still answer every call the daemon and the web app make?

`CONTRACT` is the list, in the order it is tried; each entry names who relies on it. The runner (`check`)
starts the candidate's `opencode serve` on a free loopback port, as the agent's user when there is one, with
its XDG folders in a scratch folder holding a COPY of the live state (`<data_dir>/opencode/data` and
`config`): a newer opencode may migrate the SQLite db, and the live one must not be touched by a version that
may yet be refused. It follows `/global/event` (its first event, and the session events the calls cause),
makes the calls with a password of its own, then kills the candidate's process group and removes the folder.

A call that needs a model is never made: the check must not spend the user's provider. `prompt_async` is
checked for validating its body (400 for parts that are not a list), which it does before any model is
asked. opencode answers an unknown GET path with 200 and its web UI (DESIGN §6), so every answer is held
to its shape, never to its status alone.

A failure is `UpdateRefused` naming the first call that failed, in one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog
import trio

from .agent import AgentUser, give_to_agent
from .errors import UpdateRefused
from .opencode import OPENCODE_USER
from .opencode_install import CHECK_SCRATCH, read_lines
from .reaper import Reaper
from .spawn import Child, spawn

log = structlog.get_logger("dancodes.opencode")

#: Returns what is wrong with an answer's body, or None when it has the shape asked for.
Shape = Callable[[Any], str | None]

_MISSING = object()


def json_object(**fields: type | tuple[type, ...] | Shape) -> Shape:
    """A JSON object with (at least) these fields: each of a Python type, or matching a nested shape."""

    def shape(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"not a JSON object: {_kind(value)}"
        for name, want in fields.items():
            got = value.get(name, _MISSING)
            if got is _MISSING:
                return f"no field {name!r}"
            if isinstance(want, type | tuple):
                if not isinstance(got, want) or (isinstance(got, bool) and bool not in _types(want)):
                    return f"field {name!r} is {_kind(got)}"
            elif (wrong := want(got)) is not None:
                return f"field {name!r}: {wrong}"
        return None

    return shape


def json_list(value: Any) -> str | None:
    return None if isinstance(value, list) else f"not a JSON list: {_kind(value)}"


def json_true(value: Any) -> str | None:
    return None if value is True else f"not true: {_kind(value)}"


def no_body(value: Any) -> str | None:
    return None if value is None or value is True else f"an unexpected body: {_kind(value)}"


def error_body(value: Any) -> str | None:
    """opencode's refusals are JSON objects (NotFoundError, BadRequest, …), not its web UI."""
    return None if isinstance(value, dict) else f"not opencode's JSON error: {_kind(value)}"


NUMBER = (int, float)
SESSION = json_object(id=str, directory=str, title=str, time=json_object(created=NUMBER, updated=NUMBER))


def session_list(value: Any) -> str | None:
    """A list of sessions, the check's own among them (so, not empty)."""
    if (wrong := json_list(value)) is not None:
        return wrong
    if not value:
        return "an empty list: the check's chat is not in it"
    return next((f"an item: {w}" for item in value if (w := SESSION(item)) is not None), None)


@dataclass(frozen=True)
class Call:
    """One request of the contract. `{session}` and `{moved}` in the path or body are the check's own
    chat and the folder it is moved to; with `directory`, it names the check's project folder."""

    method: str
    path: str
    status: tuple[int, ...]
    shape: Shape
    used_by: str
    body: Any = None
    directory: bool = True
    #: an event `/global/event` must carry after this call, about the check's session
    event: str | None = None
    #: a field of the answer that later calls name as {session}
    keeps_session: bool = False
    query: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


#: What the daemon (supervisor/opencode.py, chats.py, projects/housekeeping.py, the service's probe and
#: dispose_url) and the web app (web/src: actions.ts, delivery.ts, events.ts, ChatMenu.tsx, Messages.tsx)
#: ask of opencode, in an order that lets each call use what an earlier one made.
CONTRACT: tuple[Call, ...] = (
    Call(
        "GET",
        "/global/health",
        (200,),
        json_object(healthy=bool, version=str),
        "the service's probe; the app's version",
        directory=False,
    ),
    Call(
        "GET",
        "/config/providers",
        (200,),
        json_object(providers=list, default=dict),
        "app: the model picker (actions.ts)",
    ),
    Call("GET", "/config", (200,), json_object(), "app: the default model (actions.ts)"),
    Call("GET", "/agent", (200,), json_list, "app: the agent picker (actions.ts)"),
    Call(
        "POST",
        "/session",
        (200,),
        SESSION,
        "app: a new chat (delivery.ts)",
        body={},
        event="session.created",
        keeps_session=True,
    ),
    Call("GET", "/session/{session}/message", (200,), json_list, "app: a chat's messages (events.ts)"),
    Call(
        "GET",
        "/session/{session}/message/msg_00000000000000000000000000",
        (404,),
        error_body,
        "app: was a prompt delivered? 404 means no (delivery.ts)",
    ),
    Call(
        "POST",
        "/session/{session}/prompt_async",
        (400,),
        error_body,
        "app: sending a prompt (delivery.ts); checked without a model: a bad body is refused",
        body={"parts": "not a list"},
    ),
    Call(
        "PATCH",
        "/session/{session}",
        (200,),
        json_object(id=str, title=str),
        "app: renaming a chat (ChatMenu.tsx)",
        body={"title": "dancodes contract check"},
    ),
    Call(
        "GET",
        "/session/status",
        (200,),
        json_object(),
        "daemon: busy chats (opencode.py busy, chats.py, housekeeping.py)",
    ),
    Call("GET", "/permission", (200,), json_list, "app: pending permission requests (events.ts)"),
    Call(
        "POST",
        "/permission/per_00000000000000000000000000/reply",
        (404,),
        error_body,
        "app: answering a permission request (Messages.tsx)",
        body={"reply": "once"},
    ),
    Call(
        "GET",
        "/experimental/session",
        (200,),
        session_list,
        "daemon: every chat, for GC and titles (opencode.py sessions)",
        directory=False,
        query={"limit": "100000", "archived": "true"},
    ),
    Call(
        "POST",
        "/experimental/control-plane/move-session",
        (200, 204),
        no_body,
        "daemon: a new chat moved into its worktree (opencode.py move_session)",
        body={"sessionID": "{session}", "destination": {"directory": "{moved}"}},
    ),
    Call("POST", "/session/{session}/abort", (200,), json_true, "daemon and app: stop a turn"),
    Call(
        "POST",
        "/instance/dispose",
        (200,),
        json_true,
        "daemon: idle instances disposed (opencode.py dispose)",
    ),
    Call(
        "DELETE",
        "/session/{session}",
        (200,),
        json_true,
        "app: deleting a chat (ChatMenu.tsx, delivery.ts)",
        event="session.deleted",
    ),
    Call(
        "POST",
        "/global/dispose",
        (200,),
        json_true,
        "daemon: the service's dispose_url before it is stopped",
        directory=False,
    ),
)

#: The stream of every instance's events the daemon follows (chats.py), checked from start to end of the
#: check: its first event, and the ones the calls above say they cause, framed `{directory, payload}`.
EVENTS = "/global/event"
FIRST_EVENT = "server.connected"
#: Seconds: for the candidate to answer its health probe, and for an expected event to arrive.
START_TIMEOUT = 60.0
EVENT_TIMEOUT = 10.0
CALL_TIMEOUT = 30.0


@dataclass
class Candidate:
    """What to check: the version it should say it is, the folder holding its `opencode`, and how to
    start it (the live service's environment and user)."""

    version: str
    bin_dir: Path
    env: Mapping[str, str]
    user: AgentUser | None


async def check(candidate: Candidate, *, state_dir: Path, scratch_parent: Path, reaper: Reaper) -> None:
    """Run the contract against `candidate` with a copy of `state_dir` (opencode's XDG root: data,
    config); UpdateRefused naming the first call that failed."""
    try:
        await _check(candidate, state_dir=state_dir, scratch_parent=scratch_parent, reaper=reaper)
    except BaseExceptionGroup as group:
        # raised inside a nursery (the event follower runs beside the calls): the refusal itself
        refused, _ = group.split(UpdateRefused)
        if refused is None:
            raise
        first: BaseException = refused
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        log.warning("opencode_contract_failed", version=candidate.version, error=str(first))
        raise first from None
    except UpdateRefused as exc:
        log.warning("opencode_contract_failed", version=candidate.version, error=str(exc))
        raise


async def _check(candidate: Candidate, *, state_dir: Path, scratch_parent: Path, reaper: Reaper) -> None:
    discard_leftovers(scratch_parent)
    scratch = scratch_parent / f"{CHECK_SCRATCH}{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    child: Child | None = None
    tail: list[str] = []

    def keep(
        line: str,
    ) -> None:  # its last lines, for a failure message (read on: a full pipe would stall it)
        tail.append(line)
        del tail[:-5]

    try:
        try:
            await trio.to_thread.run_sync(_copy_state, state_dir, scratch)
        except (OSError, sqlite3.Error) as exc:
            # a full disk most likely: the copy of the state is the size of opencode's db and config
            full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UpdateRefused(
                f"cannot copy opencode's state for the contract check of {candidate.version}: {reason[:200]}",
                status=507 if full else 500,
            ) from None
        for name in ("project", "moved", "home", "state", "cache"):
            (scratch / name).mkdir(exist_ok=True)
        if candidate.user is not None:
            give_to_agent(candidate.user, [scratch])
        password = secrets.token_urlsafe(24)
        port = _free_port()
        env = {
            **candidate.env,
            "XDG_DATA_HOME": str(scratch / "data"),
            "XDG_CONFIG_HOME": str(scratch / "config"),
            "XDG_STATE_HOME": str(scratch / "state"),
            "XDG_CACHE_HOME": str(scratch / "cache"),
            "HOME": str(scratch / "home"),
            "OPENCODE_SERVER_PASSWORD": password,
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
        }
        env.pop("OPENCODE_SERVER_USERNAME", None)
        argv = [str(candidate.bin_dir / "opencode"), "serve", "--port", str(port), "--hostname", "127.0.0.1"]
        user = (candidate.user.uid, candidate.user.gid) if candidate.user is not None else None
        child = spawn(reaper, argv, env=env, cwd=str(scratch / "home"), user=user)
        log.info("opencode_contract_check", version=candidate.version, pid=child.pid, port=port)
        async with (
            httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                auth=httpx.BasicAuth(OPENCODE_USER, password),
                timeout=CALL_TIMEOUT,
            ) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(read_lines, child.stdout, keep)
            nursery.start_soon(read_lines, child.stderr, keep)
            await _wait_started(client, child, tail, candidate.version)
            await _run_contract(client, candidate.version, scratch)
            nursery.cancel_scope.cancel()
        log.info("opencode_contract_passed", version=candidate.version)
    finally:
        with trio.CancelScope(shield=True):
            if child is not None:
                child.signal_group(signal.SIGKILL)  # scratch state: nothing to stop cleanly
                with trio.move_on_after(10):
                    await child.wait()
            await trio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))


def discard_leftovers(scratch_parent: Path) -> None:
    """A scratch folder left by a daemon killed mid-check (its state copy may be large)."""
    if scratch_parent.is_dir():
        for leftover in scratch_parent.glob(f"{CHECK_SCRATCH}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def fill(value: Any, names: Mapping[str, str]) -> Any:
    """`value` (a path or a JSON body) with each `{name}` in its strings replaced."""
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


async def _run_contract(client: httpx.AsyncClient, version: str, scratch: Path) -> None:
    events_send, events = trio.open_memory_channel[dict[str, Any]](1000)
    names = {"moved": str(scratch / "moved"), "session": ""}
    async with trio.open_nursery() as nursery:
        first = await nursery.start(_follow_events, client, version, events_send)
        if first != FIRST_EVENT:
            raise UpdateRefused(
                f"opencode {version} failed the contract check at GET /global/event: its first event "
                f"is {first!r}, not {FIRST_EVENT!r}"
            )
        for call in CONTRACT:
            body = await _call(client, call, version, names, scratch)
            if call.name == "GET /global/health" and body.get("version") != version:
                raise UpdateRefused(
                    f"opencode {version} failed the contract check at GET /global/health: it says it is "
                    f"{str(body.get('version'))[:40]!r}"
                )
            if call.keeps_session:
                names["session"] = body["id"]
            if call.event is not None:
                await _expect_event(events, call, version, names["session"])
        nursery.cancel_scope.cancel()


async def _call(
    client: httpx.AsyncClient, call: Call, version: str, names: dict[str, str], scratch: Path
) -> Any:
    headers = {"x-opencode-directory": str(scratch / "project")} if call.directory else {}
    body = fill(call.body, names)

    def refuse(why: str) -> UpdateRefused:
        return UpdateRefused(f"opencode {version} failed the contract check at {call.name}: {why}")

    try:
        response = await client.request(
            call.method,
            fill(call.path, names),
            headers=headers,
            json=body,
            params=dict(call.query),
        )
    except httpx.HTTPError as exc:
        raise refuse(f"no answer ({type(exc).__name__})") from None
    if response.status_code not in call.status:
        want = " or ".join(map(str, call.status))
        raise refuse(f"answered {response.status_code}, expected {want}")
    try:
        decoded = response.json() if response.content else None
    except ValueError:
        decoded = _MISSING
    wrong = "not JSON" if decoded is _MISSING else call.shape(decoded)
    if wrong is not None:
        raise refuse(wrong)
    return decoded


async def _follow_events(
    client: httpx.AsyncClient,
    version: str,
    send: trio.MemorySendChannel[dict[str, Any]],
    *,
    task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow `/global/event`; started once its first event is read (its type given to the caller)."""
    started = False
    timeout = httpx.Timeout(CALL_TIMEOUT, read=EVENT_TIMEOUT * 3)
    try:
        with trio.fail_after(EVENT_TIMEOUT) as first_scope:
            async with client.stream("GET", EVENTS, timeout=timeout) as response:
                if response.status_code != 200:
                    raise UpdateRefused(
                        f"opencode {version} failed the contract check at GET /global/event: answered "
                        f"{response.status_code}, expected 200"
                    )
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    try:
                        item = json.loads(line[5:])
                        payload = item["payload"]
                        kind = payload["type"]
                    except (ValueError, KeyError, TypeError):
                        kind, payload, item = None, None, {}
                    if not started:
                        started = True
                        first_scope.deadline = float("inf")
                        task_status.started(kind)
                        continue
                    if isinstance(payload, dict):
                        await send.send({**payload, "directory": item.get("directory")})
    except trio.TooSlowError:
        raise UpdateRefused(
            f"opencode {version} failed the contract check at GET /global/event: no event within "
            f"{EVENT_TIMEOUT:g}s"
        ) from None
    except httpx.HTTPError as exc:
        if not started:
            raise UpdateRefused(
                f"opencode {version} failed the contract check at GET /global/event: no answer "
                f"({type(exc).__name__})"
            ) from None


async def _expect_event(
    events: trio.MemoryReceiveChannel[dict[str, Any]], call: Call, version: str, session: str
) -> None:
    """Wait for `call.event` about `session`, tagged with the directory it happened in (chats.py needs
    both); others are passed over."""
    with trio.move_on_after(EVENT_TIMEOUT):
        async for event in events:
            props = event.get("properties")
            if (
                event.get("type") == call.event
                and isinstance(props, dict)
                and props.get("sessionID") == session
                and isinstance(event.get("directory"), str)
            ):
                return
    raise UpdateRefused(
        f"opencode {version} failed the contract check at GET /global/event: no {call.event} event for "
        f"its chat within {EVENT_TIMEOUT:g}s of {call.name}"
    )


async def _wait_started(client: httpx.AsyncClient, child: Child, tail: list[str], version: str) -> None:
    """Until it answers its health route (per-try 0.25 s: it drops requests that come too early)."""
    with trio.move_on_after(START_TIMEOUT):
        while child.alive:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get("/global/health", timeout=0.25)
                if response.status_code < 500:
                    return
            await trio.sleep(0.1)
        last = " | ".join(tail[-3:]) or "no output"
        raise UpdateRefused(
            f"opencode {version} failed the contract check: it exited before it answered: {last[:400]}"
        )
    raise UpdateRefused(
        f"opencode {version} failed the contract check: it did not answer within {START_TIMEOUT:g}s"
    )


def _copy_state(state_dir: Path, scratch: Path) -> None:
    """opencode's data and config folders, copied; its SQLite dbs through SQLite's backup, which reads a
    consistent copy while the live opencode writes to its WAL."""
    for name in ("data", "config"):
        source = state_dir / name
        target = scratch / name
        if not source.is_dir():
            target.mkdir()
            continue
        shutil.copytree(
            source, target, symlinks=True, ignore=shutil.ignore_patterns("*.db", "*.db-wal", "*.db-shm")
        )
        for db in source.rglob("*.db"):
            copy = target / db.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            with (
                contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as live,
                contextlib.closing(sqlite3.connect(copy)) as into,
            ):
                live.backup(into)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value) if isinstance(value, dict | list | str | int | float | bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _types(want: type | tuple[type, ...]) -> tuple[type, ...]:
    return want if isinstance(want, tuple) else (want,)
