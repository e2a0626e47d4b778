"""The admin API through Caddy with the cookie: repos, worktrees, disk, GitHub, docs, and hostile names."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import httpx
import hypothesis
import msgspec
import pytest
import schemathesis
from schemathesis.checks import CheckFunction, not_a_server_error, positive_data_acceptance
from schemathesis.core.result import Ok

from supervisor.api.responses import LogEntry, ServiceLogs, ServiceStateName
from supervisor.service import State
from tests.conftest import toml_value
from tests.gitutil import git
from tests.stack import Stack, running_stack

GITHUB_TOKEN = "ghp_test_token_never_logged_0123456789"


class FakeGitHub:
    """GitHub's `GET /user/repos` on loopback (GitHub itself is unreachable here), two pages."""

    def __init__(self) -> None:
        self.auth_headers: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.auth_headers.append(self.headers.get("Authorization"))
                page2 = "page=2" in self.path
                repos = (
                    [_gh("acme", "old", "2024-01-01T00:00:00Z")]
                    if page2
                    else [
                        _gh("acme", "newest", "2026-11-01T00:00:00Z"),
                        _gh("acme", "rocket", "2025-06-01T00:00:00Z"),
                    ]
                )
                body = json.dumps(repos).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if not page2:
                    self.send_header("Link", f'<{outer.url}/user/repos?page=2>; rel="next"')
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _gh(owner: str, name: str, pushed: str) -> dict[str, Any]:
    return {
        "full_name": f"{owner}/{name}",
        "name": name,
        "owner": {"login": owner},
        "private": False,
        "description": None,
        "default_branch": "main",
        "pushed_at": pushed,
    }


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, github: FakeGitHub) -> Iterator[Stack]:
    extra = f"github_api = {toml_value(github.url)}\n"  # continues the [git] table
    with running_stack(tmp_path_factory.mktemp("admin"), extra, env={"GITHUB_TOKEN": GITHUB_TOKEN}) as stack:
        yield stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.signed_in() as client:
        yield client


def test_admin_api_needs_the_cookie_but_health_does_not(stack: Stack) -> None:
    with stack.anonymous() as anonymous:
        assert anonymous.get("/admin/health").status_code == 200
        for method, path in [("GET", "/admin/repos"), ("POST", "/admin/gc"), ("GET", "/admin/services")]:
            response = anonymous.request(method, path, json={})
            assert response.status_code == 401, (path, response.text)
            assert "error" in response.json()
    # the app checks the cookie itself as well: straight to its loopback port, bypassing Caddy
    direct = httpx.get(f"http://127.0.0.1:{stack.daemon.ports['app']}/admin/repos", timeout=10)
    assert direct.status_code == 401


def test_clone_reports_progress_then_lists_the_repo(stack: Stack, client: httpx.Client) -> None:
    remote = stack.remote("acme", "bigrepo")
    for i in range(300):  # enough objects for the transfer to report progress
        (remote.dev / f"f{i}.txt").write_bytes(os.urandom(2048))
    git(remote.dev, "add", ".")
    git(remote.dev, "commit", "-qm", "many files")
    git(remote.dev, "push", "-q", "origin", "main")

    started = client.post("/admin/repos/clone", json={"repo": "acme/bigrepo"})
    assert started.status_code == 202, started.text
    clone = started.json()["clone"]
    assert clone["repo"] == "acme/bigrepo"
    assert clone["phase"] in {
        "connecting",
        "receiving",
        "resolving",
        "checkout",
    }
    seen = []
    for _ in range(400):
        listing = client.get("/admin/repos").json()
        seen += [c for c in listing["clones"] if c["repo"] == "acme/bigrepo"]
        if any(r["repo"] == "acme/bigrepo" for r in listing["repos"]):
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError(f"clone never finished: {seen[-1:]}")
    repo = client.get("/admin/repos/acme/bigrepo").json()["repo"]
    assert repo["default_branch"] == "main"
    assert Path(repo["path"], "f299.txt").is_file()
    progressed = [c for c in seen if c["received_objects"] > 0]
    assert progressed or seen == [], seen  # a poll that caught it running saw objects arrive
    again = client.post("/admin/repos/clone", json={"repo": "acme/bigrepo"})
    assert again.status_code == 200
    assert again.json()["repo"]["repo"] == "acme/bigrepo"


def test_a_failed_clone_is_reported_and_leaves_nothing(stack: Stack, client: httpx.Client) -> None:
    failed = client.post("/admin/repos/clone", json={"repo": "acme/no-such-repo", "wait": True})
    assert failed.status_code == 502
    assert "acme/no-such-repo" in failed.json()["error"]
    repos_dir = stack.daemon.data_dir / "projects" / "repos"
    assert not [p for p in repos_dir.iterdir() if "no-such-repo" in p.name]
    listed = client.get("/admin/repos").json()["clones"]
    assert any(c["repo"] == "acme/no-such-repo" and c["phase"] == "failed" for c in listed)


def test_worktree_lifecycle_and_repo_delete_refused_while_it_has_worktrees(
    stack: Stack, client: httpx.Client
) -> None:
    stack.remote("acme", "tools")
    assert client.post("/admin/repos/clone", json={"repo": "acme/tools", "wait": True}).status_code == 201
    made = client.post("/admin/worktrees", json={"repo": "acme/tools", "session_id": "ses_toolsA1"})
    assert made.status_code == 201, made.text
    assert made.json()["session_moved"] is False  # opencode has no such chat: the worktree stands alone
    assert (
        client.post("/admin/worktrees", json={"repo": "acme/tools", "session_id": "ses_toolsA1"}).status_code
        == 409
    )
    refused = client.delete("/admin/repos/acme/tools")
    assert refused.status_code == 409
    assert "worktree" in refused.json()["error"]

    wt = Path(made.json()["worktree"]["path"])
    (wt / "notes.txt").write_text("unsaved work\n")
    kept = client.delete("/admin/worktrees/acme/tools/ses_toolsA1")
    assert kept.status_code == 409
    assert "uncommitted" in kept.json()["error"]
    assert wt.is_dir()
    forced = client.delete("/admin/worktrees/acme/tools/ses_toolsA1", params={"force": "true"})
    assert forced.status_code == 200, forced.text
    assert forced.json()["deleted"]["backup_ref"].startswith("refs/dancodes/backup/")
    assert not wt.exists()
    assert client.get("/admin/worktrees/acme/tools/ses_toolsA1").status_code == 404

    gone = client.delete("/admin/repos/acme/tools", params={"force": "true"})
    assert gone.status_code == 200, gone.text
    assert client.get("/admin/repos/acme/tools").status_code == 404


def test_a_worktree_is_checked_out_by_git_as_the_agent_and_a_failed_checkout_leaves_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    remote = stack.remote("acme", "filtered")
    remote.push_commit(".gitattributes", "*.txt filter=boom\n")
    remote.push_commit("a.txt", "smudged on checkout\n")
    cloned = client.post("/admin/repos/clone", json={"repo": "acme/filtered", "wait": True})
    assert cloned.status_code == 201, cloned.text
    clone = Path(cloned.json()["repo"]["path"])
    git(clone, "config", "filter.boom.smudge", "false")  # a filter that fails, and must not be skipped
    git(clone, "config", "filter.boom.required", "true")
    failed = client.post("/admin/worktrees", json={"repo": "acme/filtered", "session_id": "ses_boom"})
    # git's failure came back through the daemon's reaper: its status, and its reason
    assert failed.status_code == 502, failed.text
    assert failed.json()["error"] == (
        "checking out acme__filtered__ses_boom failed: git read-tree: a.txt: smudge filter boom failed"
    )
    worktrees = stack.daemon.data_dir / "projects" / "worktrees"
    assert not [p for p in worktrees.iterdir() if p.name.startswith("acme__filtered")]
    assert os.listdir(clone / ".git" / "worktrees") == []
    assert "dancodes/ses_boom" not in git(clone, "branch", "--list", "dancodes/*")

    git(clone, "config", "--unset", "filter.boom.required")  # git skips the filter now
    made = client.post("/admin/worktrees", json={"repo": "acme/filtered", "session_id": "ses_boom"})
    assert made.status_code == 201, made.text
    answer = made.json()["worktree"]
    assert (answer["dirty"], answer["size"], answer["at_risk"]) == (False, None, [])
    wt = Path(answer["path"])
    owner = clone.stat().st_uid
    assert owner != 0 or os.geteuid() != 0  # as root the daemon runs git as the agent's user
    assert {(wt / name).stat().st_uid for name in ("a.txt", "README.md", ".git")} == {owner}
    assert (clone / ".git" / "worktrees" / "ses_boom" / "index").stat().st_uid == owner
    assert git(wt, "status", "--porcelain") == ""  # the agent's own git agrees: nothing changed
    listed = client.get("/admin/worktrees/acme/filtered/ses_boom").json()["worktree"]
    assert listed["size"] > 0
    assert {k: v for k, v in listed.items() if k not in ("size", "last_activity")} == {
        k: v for k, v in answer.items() if k not in ("size", "last_activity")
    }


def test_disk_reports_the_volume_and_each_repo(client: httpx.Client) -> None:
    disk = client.get("/admin/disk").json()
    volume = disk["volume"]
    assert volume["total"] >= volume["used"] > 0
    assert volume["free"] > 0
    assert {r["repo"] for r in disk["repos"]} >= {"acme/bigrepo"}
    assert all(r["size"] > 0 for r in disk["repos"])


def test_github_repos_newest_push_first_with_the_token(
    stack: Stack, client: httpx.Client, github: FakeGitHub
) -> None:
    response = client.get("/admin/repos/github")
    assert response.status_code == 200, response.text
    repos = response.json()["repos"]
    assert [r["full_name"] for r in repos] == ["acme/newest", "acme/rocket", "acme/old"]  # both pages
    assert github.auth_headers[-1] == f"Bearer {GITHUB_TOKEN}"
    assert GITHUB_TOKEN not in stack.daemon.log()


#: the answers at an error status that say more than `{"error": "…"}`
NOT_API_ERROR = {
    ("post", "/admin/repos/clone", "502"): "CloneFailed",
    ("get", "/admin/health", "503"): "Health",
}


WEB = Path(__file__).resolve().parent.parent / "web"


def test_the_web_apps_types_are_generated_from_the_spec_the_daemon_serves(
    client: httpx.Client, tmp_path: Path
) -> None:
    """The web build writes the spec (web/src/generated/admin-openapi.json) and openapi-typescript's types
    for it (admin.ts): both must be what the running daemon serves, or the app was built against another
    API (run scripts/build-web.sh)."""
    served = client.get("/admin/openapi.json").json()
    (tmp_path / "served.json").write_text(json.dumps(served))
    built = json.loads((WEB / "src/generated/admin-openapi.json").read_text())
    assert built == served, "web/src/generated/admin-openapi.json is stale: run scripts/build-web.sh"
    made = subprocess.run(
        [
            "npm",
            "run",
            "--silent",
            "types",
            "--",
            str(tmp_path / "served.json"),
            "-o",
            str(tmp_path / "admin.ts"),
        ],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "admin.ts").read_text() == (WEB / "src/generated/admin.ts").read_text()
    # the types the app uses are these: no hand-written copy of a /admin shape is left
    for source in (WEB / "src").glob("*.ts*"):
        text = source.read_text()
        for shape in (
            "interface Repo ",
            "interface Worktree ",
            "interface ChatList ",
            "interface WorktreeDiff ",
        ):
            assert shape not in text, f"{source.name} declares {shape.strip()} by hand"


def test_openapi_spec_and_docs(client: httpx.Client) -> None:
    spec = client.get("/admin/openapi.json").json()
    paths = spec["paths"]
    for path in [
        "/admin/repos",
        "/admin/repos/clone",
        "/admin/repos/{owner}/{name}",
        "/admin/repos/github",
        "/admin/worktrees",
        "/admin/worktrees/{owner}/{name}/{session_id}",
        "/admin/disk",
        "/admin/gc",
        "/admin/services",
        "/admin/services/{name}/{action}",
        "/admin/processes",
        "/admin/chats",
    ]:
        assert path in paths, path
    assert "requestBody" in paths["/admin/worktrees"]["post"]
    assert "requestBody" in paths["/admin/config/{key}"]["put"]
    assert "requestBody" not in paths["/admin/config/{key}"]["delete"]
    schemas = spec["components"]["schemas"]
    admin = [(m, p, op) for p, ops in paths.items() if p.startswith("/admin/") for m, op in ops.items()]
    assert len(admin) >= 23
    for method, path, op in admin:
        answers = op["responses"]
        ok = [s for s in answers if s.startswith("2")]
        assert ok, (method, path, "declares no success answer")
        for status in ok:  # each success answer is a named Struct
            ref = answers[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.removeprefix("#/components/schemas/") in schemas, (method, path, ref)
        for status in set(answers) - set(ok):
            error = NOT_API_ERROR.get((method, path, status), "ApiError")
            schema = answers[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{error}"}, (method, path, status)
        if path != "/admin/health":
            assert "401" in answers, (method, path)
    health = paths["/admin/health"]["get"]["responses"]
    assert health["200"] == health["503"]
    assert set(schemas["Health"]["required"]) == {"status"}
    logs = paths["/admin/services/{name}/logs"]["get"]
    assert logs["responses"]["200"]["content"]["application/x-ndjson"]["schema"]["$ref"].endswith("/LogEntry")
    assert {p["name"] for p in logs["parameters"] if p["in"] == "query"} == {"n", "follow"}
    # every reference resolves: nested Structs are in the spec too, under their own names
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(schemas), refs - set(schemas)
    assert {"RepoInfo", "WorktreeInfo", "GcReport", "ServiceInfo", "Config", "CloneStatus"} <= refs
    assert all("." not in name for name in schemas)  # no two Structs of one name
    docs = client.get("/admin/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_followed_logs_are_the_declared_ndjson(client: httpx.Client) -> None:
    tail = client.get("/admin/services/caddy/logs", params={"n": 3})
    assert tail.status_code == 200, tail.text
    lines = msgspec.json.decode(tail.content, type=ServiceLogs).lines
    assert lines  # Caddy logs its start
    followed: list[LogEntry] = []
    with client.stream("GET", "/admin/services/caddy/logs", params={"n": len(lines), "follow": 1}) as stream:
        assert stream.headers["content-type"].startswith("application/x-ndjson")
        for raw in stream.iter_lines():
            if raw.strip():  # a blank line is a heartbeat
                followed.append(msgspec.json.decode(raw, type=LogEntry))
            if len(followed) == len(lines):
                break
    assert followed == lines


def test_declared_service_states_are_the_real_ones() -> None:
    assert set(get_args(ServiceStateName)) == {str(state) for state in State}


def test_bad_bodies_get_one_line_errors(client: httpx.Client) -> None:
    cases: list[tuple[str, Any]] = [
        ("/admin/repos/clone", {"repo": 5}),
        ("/admin/repos/clone", {}),
        ("/admin/repos/clone", {"repo": "acme/x", "extra": 1}),
        ("/admin/worktrees", {"repo": "acme/x"}),
        ("/admin/gc", {"dry_run": "yes"}),
    ]
    for path, body in cases:
        response = client.post(path, json=body)
        assert response.status_code == 400, (path, body, response.text)
        error = response.json()["error"]
        assert "\n" not in error
        assert "Traceback" not in error
    for raw in [b"{nope", b'{"repo": "acme/\xff"}', b"\x9e"]:  # not JSON; not UTF-8
        for path in ["/admin/repos/clone", "/admin/worktrees", "/admin/gc", "/admin/config/gc.idle_days"]:
            method = "PUT" if "config" in path else "POST"
            response = client.request(method, path, content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (path, raw, response.text)
            assert "\n" not in response.json()["error"]


def test_an_unknown_config_key_is_not_found_whatever_the_method(stack: Stack, client: httpx.Client) -> None:
    # on the control socket, which may change any key; through the wall a change of a key that is no
    # tunable is refused before it is looked up (403, tested in test_wall)
    with stack.daemon.client() as operator:
        for method, body in [("GET", None), ("PUT", {"value": "1"}), ("DELETE", None)]:
            response = operator.request(method, "/admin/config/nope.nothing", json=body)
            assert response.status_code == 404, (method, response.text)
            assert "nope" in response.json()["error"]
    assert client.get("/admin/config/nope.nothing").status_code == 404
    unset = client.delete("/admin/config/gc.idle_days")  # a key, but the settings file does not set it
    assert (unset.status_code, "not set" in unset.json()["error"]) == (404, True)


HOSTILE = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F%2E%2E",
    "..%2f..%2fetc",
    "-rf",
    "--upload-pack=touch pwned",
    "a%0ab",
    "a%00b",
    "a b",
    "/etc",
    "x" * 101,
    "ses_" + "y" * 70,
]
HOSTILE_BODY = [
    "../../etc/passwd",
    "/etc/passwd",
    "acme/..",
    "../acme",
    "acme/-rf",
    "-acme/x",
    "acme/x\nmalicious",
    "acme/x\x00",
    "acme/x.git",
    f"{'o' * 40}/x",
    f"acme/{'n' * 101}",
    "acme",
    "acme/x/y",
]


def raw_request(stack: Stack, client: httpx.Client, method: str, path: str) -> tuple[int, str]:
    """`path` byte for byte: httpx would resolve `..` segments before sending."""
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nOrigin: {stack.url}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.daemon.ports["public"]), timeout=10) as sock:
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.decode(errors="replace")[-300:]


def _snapshot(root: Path, skip: Path) -> set[tuple[str, float]]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        for name in filenames + dirnames:
            path = Path(dirpath, name)
            if path != skip:
                out.add((str(path), path.lstat().st_mtime))
    return out


def test_hostile_names_are_refused_and_touch_nothing(stack: Stack, client: httpx.Client) -> None:
    stack.remote("acme", "target")
    assert client.post("/admin/repos/clone", json={"repo": "acme/target", "wait": True}).status_code == 201
    data = stack.daemon.data_dir
    victim = stack.root / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "keep.txt").write_text("precious\n")
    home = stack.root / "daemon"  # the daemon's cwd: its config, its log, the data_dir
    outside = _snapshot(stack.root, home)
    around = sorted(os.listdir(home)), sorted(os.listdir(data))
    projects = data / "projects"
    inside = sorted(str(p) for p in projects.rglob("*") if ".git" not in p.parts)

    for bad in HOSTILE:
        for method, path in [
            ("GET", f"/admin/repos/{bad}/target"),
            ("GET", f"/admin/repos/acme/{bad}"),
            ("DELETE", f"/admin/repos/{bad}/target?force=true"),
            ("DELETE", f"/admin/repos/acme/{bad}?force=true"),
            ("GET", f"/admin/worktrees/acme/target/{bad}"),
            ("DELETE", f"/admin/worktrees/acme/target/{bad}?force=true"),
            ("DELETE", f"/admin/worktrees/{bad}/target/ses_1?force=true"),
        ]:
            status, text = raw_request(stack, client, method, path)
            assert 400 <= status < 500, (method, path, status, text)
    for bad in HOSTILE_BODY:
        for path, body in [
            ("/admin/repos/clone", {"repo": bad, "wait": True}),
            ("/admin/worktrees", {"repo": bad, "session_id": "ses_ok1"}),
        ]:
            response = client.post(path, json=body)
            assert response.status_code == 400, (path, body, response.status_code, response.text)
            assert "\n" not in response.json()["error"]
    for bad_sid in ["..", "../x", "-x", "a/b", "a\nb", "a__b", "", "z" * 65, "/abs"]:
        response = client.post("/admin/worktrees", json={"repo": "acme/target", "session_id": bad_sid})
        assert response.status_code == 400, (bad_sid, response.text)
    for bad_branch in ["../x", "-x", "a..b", "a b", "x.lock", "@{u}", "refs/../x", "a\nb", "b" * 300]:
        response = client.post(
            "/admin/worktrees",
            json={"repo": "acme/target", "session_id": "ses_branchy", "branch": bad_branch},
        )
        assert response.status_code == 400, (bad_branch, response.text)

    assert _snapshot(stack.root, home) == outside
    assert (sorted(os.listdir(home)), sorted(os.listdir(data))) == around
    assert (victim / "keep.txt").read_text() == "precious\n"
    assert sorted(str(p) for p in projects.rglob("*") if ".git" not in p.parts) == inside
    assert client.get("/admin/repos/acme/target").status_code == 200


# -- fuzz: last in this module, since it may prune what the tests above made ----------------------


#: the 5xx an operation may answer to valid input: a repo the remote does not have fails in git
UPSTREAM_FAILURES = {"POST /admin/repos/clone": 502}
#: operations that refuse some input their schema allows, for what no schema can state (400, one line)
CHECKED_BEYOND_THE_SCHEMA = {
    "POST /admin/push/subscriptions",  # the browser's key must be a point on P-256; http only on loopback
}


def test_fuzz_admin_api_from_its_openapi_spec(stack: Stack, client: httpx.Client) -> None:
    """Every /admin operation of the generated spec, with schemathesis' generated inputs, valid and
    not: never a 5xx, and every answer as the spec declares it: a documented status, media type and
    schema, valid input accepted and invalid input refused (all of schemathesis' checks). Errors are
    one line."""
    spec = client.get("/admin/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec).include(path_regex="^/admin/")
    cookies = dict(client.cookies)
    headers = {"Origin": stack.url}
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 23
    # signing out everywhere ends the fuzzer's own session too: those go last, the rest signed in
    operations.sort(key=lambda op: op.method.upper() == "DELETE" and op.path.startswith("/admin/sessions"))
    calls: dict[str, int] = {}
    answered: set[tuple[str, int]] = set()
    negative: dict[str, int] = {}

    for operation in operations:
        label = operation.label

        # valid input, and input that breaks the spec (an operation without inputs has none)
        invalid = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)

        @hypothesis.given(case=operation.as_strategy() | invalid)
        @hypothesis.settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def conforms(case: schemathesis.Case[Any]) -> None:
            if case.query:
                case.query.pop("follow", None)  # a followed log never ends: the stream's own test reads it
            response = case.call(base_url=stack.url, headers=headers, cookies=cookies)
            calls[label] = calls.get(label, 0) + 1  # noqa: B023 (runs before the loop moves on)
            answered.add((label, response.status_code))  # noqa: B023
            if case.meta is not None and not case.meta.generation.mode.is_positive:
                negative[label] = negative.get(label, 0) + 1  # noqa: B023
            upstream = UPSTREAM_FAILURES.get(label)  # noqa: B023
            if response.status_code >= 500:
                assert response.status_code == upstream, (label, response.status_code, response.text)  # noqa: B023
            excluded: list[CheckFunction] = [not_a_server_error] if upstream else []
            if label in CHECKED_BEYOND_THE_SCHEMA:  # noqa: B023
                excluded.append(positive_data_acceptance)
            case.validate_response(response, headers=headers, excluded_checks=excluded)
            if response.status_code >= 400:
                error = response.json()["error"]
                assert isinstance(error, str)
                assert "\n" not in error

        conforms()
    assert sum(calls.values()) >= 3 * len(operations), calls
    assert len(negative) >= 10, negative  # the operations that take input got invalid input too
    # the success shapes were seen, not only refusals: checked against their schemas above
    ok = {label for label, status in answered if status < 300}
    for label in [
        "GET /admin/health",
        "GET /admin/services",
        "GET /admin/config",
        "GET /admin/repos",
        "GET /admin/worktrees",
        "GET /admin/disk",
        "POST /admin/gc",
        "GET /admin/chats",
        "GET /admin/processes",
        "GET /admin/repos/github",
    ]:
        assert label in ok, (label, sorted(answered))


def test_a_json_body_is_held_to_its_types_as_the_spec_states_them(stack: Stack) -> None:
    """quart-schema converts leniently ("0" for a boolean); the spec says boolean, so it is a 400."""
    with stack.signed_in() as client:  # its own session: the fuzz run may have ended the others
        for path, body, field in [
            ("/admin/repos/clone", {"repo": "acme/none", "wait": "0"}, "wait"),
            ("/admin/gc", {"dry_run": "true"}, "dry_run"),
        ]:
            response = client.post(path, json=body)
            assert response.status_code == 400, (path, response.text)
            assert field in response.json()["error"]
