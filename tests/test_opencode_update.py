"""opencode update, rollback and versions: the pure parts, then a real daemon switching real opencodes.

The stack runs the checkout's opencode 1.18.33 (the pin); the npm registry here has 1.18.32, installed by the
daemon's own npm (the machine's npm cache, so it downloads once). A broken "version" is put into the store by
hand: a prefix whose package.json says 1.18.99-broken and whose `opencode` is a small HTTP server that answers
the health route and the event stream, and nothing else the contract needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import trio

from supervisor.ctl import opencode_lines
from supervisor.errors import UpdateRefused
from supervisor.layout import layout
from supervisor.opencode import OpencodeClient
from supervisor.opencode_contract import (
    CONTRACT,
    EVENTS,
    SESSION,
    Candidate,
    check,
    json_object,
    session_list,
)
from supervisor.opencode_install import (
    SELECTION,
    Selection,
    Store,
    ensure_selected,
    exact_version,
    pinned_version,
)
from supervisor.opencode_versions import Hooks, OpencodeVersions
from supervisor.reaper import Reaper
from supervisor.service import Launch
from tests.conftest import ONLY_TEST_SERVICES, DaemonProc
from tests.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parent.parent
PIN = pinned_version(ROOT)
OLDER = "1.18.32"
BROKEN = "1.18.99-broken"

STAND_IN = """#!/usr/bin/python3
# A stand-in opencode: health and the event stream, and nothing else the contract needs. With a report path,
# it writes who it runs as and with what state, then wrecks that state as a bad migration would.
import hashlib, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = %(version)r
REPORT = %(report)r
if "--version" in sys.argv:
    print(VERSION)
    sys.exit(0)
port = int(sys.argv[sys.argv.index("--port") + 1])
if REPORT:
    db = os.path.join(os.environ["XDG_DATA_HOME"], "opencode", "opencode.db")
    report = {
        "uid": os.getuid(),
        "xdg": {k: os.environ.get(k) for k in os.environ if k.startswith("XDG_") and k.endswith("_HOME")},
        "db_bytes": os.path.getsize(db) if os.path.exists(db) else None,
        "password_sha256": hashlib.sha256(os.environ["OPENCODE_SERVER_PASSWORD"].encode()).hexdigest(),
    }
    if os.path.exists(db):
        with open(db, "r+b") as f:
            f.write(b"wrecked by a migration" * 100)
    with open(REPORT, "w") as f:
        json.dump(report, f)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/global/health":
            body = json.dumps({"healthy": True, "version": VERSION}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/global/event":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            event = {"payload": {"type": "server.connected", "properties": {}}}
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\\n\\n")
            self.wfile.flush()
            while True:
                time.sleep(1)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args):
        pass


print(f"opencode server listening on http://127.0.0.1:{port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


#: A stand-in that answers the whole contract, but will not run outside a contract check's scratch folder:
#: a version that passes the check and then fails under the service.
PASSES_THE_CHECK_ONLY = """#!/usr/bin/python3
import json, os, queue, re, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = %(version)r
if "--version" in sys.argv:
    print(VERSION)
    sys.exit(0)
if "opencode-check." not in os.getcwd():
    print("this stand-in runs in a contract check only", file=sys.stderr)
    sys.exit(3)
port = int(sys.argv[sys.argv.index("--port") + 1])
streams = []
session = {"id": "ses_standin", "directory": "", "title": "t", "time": {"created": 1, "updated": 1}}


def publish(kind, directory):
    for q in list(streams):
        q.put({"directory": directory, "payload": {"type": kind, "properties": {"sessionID": session["id"]}}})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        path = self.path.split("?")[0]
        directory = self.headers.get("x-opencode-directory", "")
        route = (self.command, re.sub(r"(ses|msg|per)_[0-9A-Za-z]+", "ID", path))
        if route == ("GET", "/global/event"):
            return self.events()
        if route == ("POST", "/session"):
            session["directory"] = directory
            self.answer(200, session)
            return publish("session.created", directory)
        if route == ("DELETE", "/session/ID"):
            self.answer(200, True)
            return publish("session.deleted", directory)
        if route == ("PATCH", "/session/ID"):
            session["title"] = body["title"]
        answers = {
            ("GET", "/global/health"): (200, {"healthy": True, "version": VERSION}),
            ("GET", "/config/providers"): (200, {"providers": [], "default": {}}),
            ("GET", "/config"): (200, {}),
            ("GET", "/agent"): (200, []),
            ("GET", "/session/ID/message"): (200, []),
            ("GET", "/session/ID/message/ID"): (404, {"name": "NotFoundError"}),
            ("POST", "/session/ID/prompt_async"): (400, {"name": "BadRequest"}),
            ("PATCH", "/session/ID"): (200, session),
            ("GET", "/session/status"): (200, {}),
            ("GET", "/permission"): (200, []),
            ("POST", "/permission/ID/reply"): (404, {"name": "NotFound"}),
            ("GET", "/experimental/session"): (200, [session]),
            ("POST", "/experimental/control-plane/move-session"): (204, None),
            ("POST", "/session/ID/abort"): (200, True),
            ("POST", "/instance/dispose"): (200, True),
            ("POST", "/global/dispose"): (200, True),
        }
        self.answer(*answers.get(route, (404, None)))

    do_GET = do_POST = do_PATCH = do_DELETE = handle_one

    def events(self):
        q = queue.Queue()
        streams.append(q)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        q.put({"payload": {"type": "server.connected", "properties": {}}})
        while True:
            self.wfile.write(b"data: " + json.dumps(q.get()).encode() + b"\\n\\n")
            self.wfile.flush()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def put_stand_in(
    store_root: Path, version: str, report: Path | None = None, *, script: str = STAND_IN
) -> Path:
    """A whole "version" in the store, made by hand: no npm."""
    prefix = store_root / version
    package = prefix / "node_modules" / "opencode-ai"
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "opencode-ai", "version": version}))
    bin_dir = prefix / "node_modules" / ".bin"
    bin_dir.mkdir()
    exe = bin_dir / "opencode"
    exe.write_text(script % {"version": version, "report": str(report or "")})
    exe.chmod(0o755)
    for path in [store_root, prefix, *prefix.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)  # the agent runs it
    return prefix


# -- the pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1.18.32", "0.0.1", "1.18.99-broken", "2.0.0-rc.1+build.5", "10.20.30"])
def test_exact_versions_pass(text: str) -> None:
    assert exact_version(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "latest",
        "^1.18.32",
        "~1.18",
        "1.18",
        "1.x",
        ">=1.0.0",
        "01.2.3",
        "1.2.3 ",
        "1.2.3\nx",
        "v1.2.3",
        "1" * 70,
    ],
)
def test_anything_but_an_exact_version_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(UpdateRefused) as caught:
        exact_version(text)
    assert caught.value.status == 400
    message = str(caught.value)
    assert "not an exact version" in message
    assert "\n" not in message
    assert len(message) < 200


def test_the_selection_round_trips_and_is_written_whole(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.selection() == Selection()  # none made yet
    store.select(Selection(current=OLDER, previous=PIN))
    again = Store(tmp_path).selection()
    assert (again.current, again.previous) == (OLDER, PIN)
    record = store.root / SELECTION
    assert stat.S_IMODE(record.stat().st_mode) == 0o644
    assert [p.name for p in store.root.iterdir()] == [SELECTION]  # no temp file left
    record.write_text("{not json")
    assert Store(tmp_path).selection() == Selection()  # unreadable: as if none, the pin runs


def test_the_store_lists_whole_versions_and_prunes_all_but_those_kept(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for version in ("1.18.30", "1.18.31", OLDER, BROKEN):
        put_stand_in(store.root, version)
    half = store.root / "1.18.29"
    (half / "node_modules").mkdir(parents=True)  # no binary, no package.json: not whole
    store.select(Selection(current=OLDER))
    assert store.versions() == ["1.18.30", "1.18.31", OLDER, BROKEN]  # not the half one
    gone = store.prune({OLDER, "1.18.31"})
    assert sorted(gone) == sorted(["1.18.29", "1.18.30", BROKEN])
    assert sorted(p.name for p in store.root.iterdir()) == sorted([OLDER, "1.18.31", SELECTION])


def test_the_daemon_runs_the_selected_version_else_the_pin(tmp_path: Path) -> None:
    install = layout(str(ROOT))
    store = Store(tmp_path)
    put_stand_in(store.root, OLDER)

    async def chosen() -> tuple[str, Path]:
        return await ensure_selected(install, tmp_path, Reaper(interval=1.0), os.environ)

    assert trio.run(chosen) == (PIN, install.node_bin)  # nothing selected: the pin, from the checkout
    store.select(Selection(current=OLDER, previous=PIN))
    assert trio.run(chosen) == (OLDER, store.root / OLDER / "node_modules" / ".bin")
    store.select(Selection(current=PIN, previous=OLDER))
    assert trio.run(chosen) == (PIN, install.node_bin)  # the pin lives in the checkout, not the store
    store.select(Selection(current="1.18.20", previous=PIN))  # selected, then deleted by hand
    assert trio.run(chosen) == (PIN, install.node_bin)


def test_a_start_clears_what_a_daemon_killed_mid_update_left(tmp_path: Path) -> None:
    install = layout(str(ROOT))
    scratch = tmp_path / "opencode-check.4242" / "data"
    scratch.mkdir(parents=True)
    partial = tmp_path / "opencode-versions" / f"{OLDER}.partial-4242" / "node_modules"
    partial.mkdir(parents=True)
    versions = OpencodeVersions(
        install=install,
        data_dir=tmp_path,
        reaper=Reaper(interval=1.0),
        environ=os.environ,
        hooks=Hooks(
            service=lambda: None,
            launch=lambda: Launch(env={}),
            agent=lambda: None,
            use_bin_dir=lambda _: None,
            client=OpencodeClient("http://127.0.0.1:9"),
        ),
    )
    assert trio.run(versions.choose) == install.node_bin
    assert versions.current == PIN
    assert not scratch.parent.exists()
    assert list((tmp_path / "opencode-versions").iterdir()) == []


def test_a_state_that_cannot_be_copied_refuses_the_check_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / "opencode"
    (state / "data" / "opencode").mkdir(parents=True)
    (state / "data" / "opencode" / "opencode.db").write_bytes(b"not a database at all" * 10)
    prefix = put_stand_in(tmp_path / "store", BROKEN)
    candidate = Candidate(version=BROKEN, bin_dir=prefix / "node_modules" / ".bin", env={}, user=None)

    async def run_check() -> None:
        await check(candidate, state_dir=state, scratch_parent=tmp_path, reaper=Reaper(interval=1.0))

    with pytest.raises(UpdateRefused) as caught:
        trio.run(run_check)
    assert caught.value.status == 500
    assert str(caught.value).startswith(f"cannot copy opencode's state for the contract check of {BROKEN}: ")
    assert not list(tmp_path.glob("opencode-check.*"))  # the partial copy is gone


def test_shapes_refuse_what_the_daemon_could_not_read() -> None:
    session = {"id": "ses_1", "directory": "/x", "title": "t", "time": {"created": 1, "updated": 2}}
    assert SESSION(session) is None
    assert SESSION({**session, "id": 5}) == "field 'id' is 5"
    assert SESSION({k: v for k, v in session.items() if k != "title"}) == "no field 'title'"
    assert (
        SESSION({**session, "time": {"created": True, "updated": 2}})
        == "field 'time': field 'created' is true"
    )
    assert SESSION("<!doctype html>") is not None  # opencode's web UI for a path it does not know
    assert json_object(healthy=bool)({"healthy": 1}) is not None
    assert session_list([]) is not None
    assert session_list([session]) is None
    assert session_list([session, {"id": "x"}]) == "an item: no field 'directory'"


def _normal(path: str) -> str:
    """A path with its variable segments (ids, `${...}`, `{...}`) as `{}`, its query left out."""
    path = path.split("?")[0]
    return re.sub(r"\$\{[^}]*\}|\{[^}]*\}|(ses|msg|per)_[0-9A-Za-z]+", "{}", path)


def test_the_contract_covers_every_opencode_call_of_the_daemon_and_the_app() -> None:
    """A call added to the daemon's opencode client or to the web app without a contract entry fails here."""
    checked = {(c.method, _normal(c.path)) for c in CONTRACT} | {("GET", EVENTS)}  # followed throughout
    daemon = (ROOT / "supervisor" / "opencode.py").read_text()
    used = {(m, _normal(p)) for m, p in re.findall(r'"(GET|POST|PUT|PATCH|DELETE)",\s*f?"(/[^"]+)"', daemon)}
    assert ("GET", "/session/status") in used
    assert len(used) >= 6
    app_calls = re.compile(r'api\s*\.(get|post|patch|del)(?:<[^>]*(?:<[^>]*>[^>]*)?>)?\(\s*[`"](/[^`"]+)[`"]')
    verbs = {"get": "GET", "post": "POST", "patch": "PATCH", "del": "DELETE"}
    for source in sorted((ROOT / "web" / "src").glob("*.ts*")):
        if ".test." in source.name:
            continue
        for verb, path in app_calls.findall(source.read_text()):
            if not path.startswith(("/admin", "/auth")):
                used.add((verbs[verb], _normal(path)))
    delivery = (ROOT / "web" / "src" / "delivery.ts").read_text()  # its calls go through `call(...)`
    for path in re.findall(r"const url = `(/session/[^`]+)`", delivery):
        used.add(("POST" if path.endswith("prompt_async") else "GET", _normal(path)))
    assert ("POST", "/session/{}/prompt_async") in used
    assert ("GET", "/session/{}/message/{}") in used
    assert ("GET", "/config/providers") in used
    assert ("POST", "/permission/{}/reply") in used
    assert used - checked == set()
    # the service's probe and dispose_url
    assert {("GET", "/global/health"), ("POST", "/global/dispose")} <= checked


def test_versions_table_marks_current_previous_and_pinned() -> None:
    body = {
        "current": OLDER,
        "previous": PIN,
        "pinned": PIN,
        "installed": [{"version": OLDER, "path": "/d/1.18.32"}, {"version": PIN, "path": "/src"}],
        "changing": False,
    }
    lines = opencode_lines(body)
    assert lines[0].split() == ["VERSION", "PATH"]
    assert lines[1].split() == [OLDER, "current", "/d/1.18.32"]
    assert lines[2].split() == [PIN, "previous,", "pinned", "/src"]
    assert lines[-1] == f"current {OLDER}, previous {PIN}, pinned {PIN}"


def test_ctl_opencode_without_an_opencode_service(start_daemon: Callable[..., DaemonProc]) -> None:
    daemon = start_daemon(ONLY_TEST_SERVICES)
    listed = daemon.ctl("--json", "opencode", "versions")
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    assert (body["current"], body["previous"], body["pinned"], body["changing"]) == (None, None, PIN, False)
    assert PIN in [item["version"] for item in body["installed"]]  # the checkout's own
    table = daemon.ctl("opencode", "versions")
    assert table.returncode == 0
    assert f"current -, previous -, pinned {PIN}" in table.stdout
    for args in (["update", OLDER], ["update"], ["rollback"]):
        refused = daemon.ctl("opencode", *args)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.strip().splitlines()[-1] == (
            "dancodes-ctl: no service runs opencode here: nothing to update or roll back"
        )
    usage = daemon.ctl("opencode", "update", "1.18")
    assert usage.returncode == 2
    assert "not an exact version like 1.18.32: '1.18'" in usage.stderr
    assert not (daemon.data_dir / "opencode-versions").exists()  # nothing installed, nothing recorded


# -- a real daemon ----------------------------------------------------------------------------------


def npm_cache() -> str:
    return subprocess.run(
        ["npm", "config", "get", "cache"], capture_output=True, text=True, check=True
    ).stdout.strip()


def wall_version(stack: Stack) -> str:
    with stack.signed_in() as client:
        response = client.get("/global/health")
        assert response.status_code == 200, response.text
        version: str = response.json()["version"]
        return version


def chat_readable(stack: Stack, session_id: str, title: str) -> bool:
    with stack.signed_in() as client:
        found = client.get(f"/session/{session_id}", headers={"x-opencode-directory": str(stack.root)})
        messages = client.get(
            f"/session/{session_id}/message", headers={"x-opencode-directory": str(stack.root)}
        )
    return (
        found.status_code == 200
        and found.json()["title"] == title
        and messages.status_code == 200
        and isinstance(messages.json(), list)
    )


def versions(stack: Stack) -> dict[str, object]:
    done = stack.daemon.ctl("--json", "opencode", "versions")
    assert done.returncode == 0, done.stderr
    body: dict[str, object] = json.loads(done.stdout)
    return body


def stand_ins_running(exe: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(exe) in " ".join(proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_update_and_rollback_follow_through_the_wall_and_a_failed_check_changes_nothing(
    tmp_path: Path,
) -> None:
    with running_stack(tmp_path, env={"npm_config_cache": npm_cache()}) as stack:
        daemon = stack.daemon
        assert wall_version(stack) == PIN
        with stack.signed_in() as client:
            made = client.post("/session", headers={"x-opencode-directory": str(tmp_path)}, json={})
            assert made.status_code == 200, made.text
            session_id = made.json()["id"]
            title = "made before the update"
            assert client.patch(
                f"/session/{session_id}",
                headers={"x-opencode-directory": str(tmp_path)},
                json={"title": title},
            ).is_success
            # an update is the control socket's alone; the wall may read and roll back
            refused = client.post("/admin/opencode/update", json={"version": OLDER})
            assert refused.status_code == 403
            assert "control socket" in refused.json()["error"]
            seen = client.get("/admin/opencode")
            assert seen.status_code == 200
            assert seen.json()["current"] == PIN
        assert chat_readable(stack, session_id, title)
        listed = versions(stack)
        assert (listed["current"], listed["previous"], listed["pinned"]) == (PIN, None, PIN)

        # bad input: one line, nothing changed
        bad = daemon.ctl("opencode", "update", "^1.18")
        assert bad.returncode == 2
        assert "not an exact version" in bad.stderr
        with daemon.client() as raw:
            answer = raw.post("/admin/opencode/update", json={"version": "latest; rm -rf /"})
        assert answer.status_code == 400
        assert "not an exact version" in answer.json()["error"]
        nothing = daemon.ctl("opencode", "rollback")
        assert nothing.returncode == 1
        assert "no previous opencode version" in nothing.stderr

        # a candidate that fails the contract check: refused, the old opencode never stopped
        store = daemon.data_dir / "opencode-versions"
        reports = tmp_path / "reports"
        reports.mkdir(mode=0o777)
        reports.chmod(0o777)  # the stand-in runs as the agent
        broken = put_stand_in(store, BROKEN, reports / "stand-in.json")
        before = daemon.service("opencode")
        failed = daemon.ctl("opencode", "update", BROKEN, timeout=180)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        notice, line = failed.stderr.strip().splitlines()  # what it is doing, then the one-line refusal
        assert "this can take minutes" in notice
        assert f"opencode {BROKEN} failed the contract check at GET /config/providers: answered 404" in line
        after = daemon.service("opencode")
        assert (after["pid"], after["restarts"], after["state"]) == (
            before["pid"],
            before["restarts"],
            "running",
        )
        assert wall_version(stack) == PIN
        assert not stand_ins_running(broken / "node_modules" / ".bin" / "opencode")  # stopped by pid
        assert not list(daemon.data_dir.glob("opencode-check.*"))  # the scratch state is gone
        assert not broken.exists()  # a refused candidate is not kept
        assert versions(stack)["current"] == PIN
        # it ran as the agent, on a copy of the state (wrecked now, and gone), with a password of its own
        report = json.loads((reports / "stand-in.json").read_text())
        if os.geteuid() == 0:
            assert report["uid"] == pwd.getpwnam("dancodes-agent").pw_uid
        live_state = daemon.data_dir / "opencode"
        assert len(report["xdg"]) == 4, report["xdg"]
        for name, path in report["xdg"].items():
            assert path.startswith(str(daemon.data_dir / "opencode-check.")), (name, path)
        assert report["db_bytes"] > 0  # the live db, copied
        live_password = (daemon.data_dir / "secrets" / "opencode-server-password").read_text().strip()
        assert report["password_sha256"] != hashlib.sha256(live_password.encode()).hexdigest()
        assert (live_state / "data" / "opencode" / "opencode.db").read_bytes()[:16] == b"SQLite format 3\x00"
        assert chat_readable(stack, session_id, title)

        # a real older version: npm installs it, the check passes, the service switches
        updated = daemon.ctl("opencode", "update", OLDER, timeout=900)
        assert updated.returncode == 0, updated.stderr
        assert f"opencode {OLDER} is running (previous: {PIN})" in updated.stdout
        assert wall_version(stack) == OLDER
        assert chat_readable(stack, session_id, title)
        listed = versions(stack)
        assert (listed["current"], listed["previous"], listed["pinned"]) == (OLDER, PIN, PIN)
        assert OLDER in [item["version"] for item in listed["installed"]]  # type: ignore[attr-defined]
        selection = json.loads((store / SELECTION).read_text())
        assert selection == {"current": OLDER, "previous": PIN}
        again = daemon.ctl("opencode", "update", OLDER)
        assert again.returncode == 1
        assert "already the current version" in again.stderr

        # rollback: back to the pin, the chat still there
        rolled = daemon.ctl("opencode", "rollback", timeout=300)
        assert rolled.returncode == 0, rolled.stderr
        assert wall_version(stack) == PIN
        assert chat_readable(stack, session_id, title)
        listed = versions(stack)
        assert (listed["current"], listed["previous"]) == (PIN, OLDER)
        latest = subprocess.run(
            ["npm", "view", "opencode-ai", "version"], capture_output=True, text=True, check=True, timeout=120
        ).stdout.strip()
        if latest == PIN:  # the registry here: its latest is the pin, running again now
            same = daemon.ctl("opencode", "update", timeout=300)
            assert same.returncode == 1
            assert same.stderr.strip().splitlines()[-1] == (
                f"dancodes-ctl: opencode {latest} is already the current version"
            )
        events = [e.get("event") for e in daemon.events()]
        assert events.count("opencode_switched") == 2
        assert "opencode_contract_passed" in events


def test_a_version_that_passes_the_check_but_fails_under_the_service_is_undone(tmp_path: Path) -> None:
    with running_stack(tmp_path) as stack:
        daemon = stack.daemon
        candidate = "1.18.98-check-only"
        store = daemon.data_dir / "opencode-versions"
        put_stand_in(store, candidate, script=PASSES_THE_CHECK_ONLY)
        failed = daemon.ctl("opencode", "update", candidate, timeout=300)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        line = failed.stderr.strip().splitlines()[-1]
        assert line.startswith(
            f"dancodes-ctl: opencode {candidate} passed the check but did not start under "
        )
        assert line.endswith(f": back on {PIN}")
        assert daemon.service("opencode")["state"] == "running"
        assert wall_version(stack) == PIN
        listed = versions(stack)
        assert (listed["current"], listed["previous"]) == (PIN, None)  # the record as it was
        assert not (store / candidate).exists()
        events = [e.get("event") for e in daemon.events()]
        assert "opencode_contract_passed" in events
        assert "opencode_switch_failed" in events
