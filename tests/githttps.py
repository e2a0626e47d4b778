"""GitHub stand-in for tests: git over HTTPS that demands the token, and the REST calls the daemon makes
(`GET /user` at start, `GET /user/repos` answered with none, a repo's pulls), on one loopback port with
a CA of its own (DESIGN §7).

    with GitHubStandIn(remotes, token, tmp) as github:
        env["SSL_CERT_FILE"] = str(github.ca)               # the daemon's libgit2 and httpx, the agent's git
        remote_url = github.remote_url                      # https://127.0.0.1:PORT/{owner}/{name}.git
        github_api = github.api                             # https://127.0.0.1:PORT/api

git itself serves the repositories: `git http-backend` (CGI) under `remotes`, receive-pack included,
for requests whose Basic credentials are `x-access-token:<token>` (what GitHub takes); anything else
gets 401. Every request is recorded, with the credentials it carried.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

USER = {"login": "octo-dev", "id": 4242, "name": "Octo Dev"}


@dataclass
class Seen:
    method: str
    path: str
    authorized: bool


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it, made with openssl: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "cert.pem", directory / "cert.key", directory / "cert.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dancodes test CA",
            "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
            "-out", str(csr))  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    for path in (ca, cert):
        path.chmod(0o644)  # the agent's user reads the CA too
    return ca, cert, key


@dataclass
class Pull:
    owner: str
    name: str
    number: int
    body: dict[str, Any]  # what the daemon sent: title, body, head, base, draft

    @property
    def url(self) -> str:
        return f"https://github.example/{self.owner}/{self.name}/pull/{self.number}"


@dataclass
class GitHubStandIn:
    remotes: Path
    token: str
    workdir: Path
    seen: list[Seen] = field(default_factory=list)
    pulls: list[Pull] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def ca(self) -> Path:
        return self.workdir / "ca.pem"

    @property
    def remote_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/{{owner}}/{{name}}.git"

    @property
    def api(self) -> str:
        return f"https://127.0.0.1:{self.port}/api"

    def __enter__(self) -> GitHubStandIn:
        _, cert, key = make_ca_and_cert(self.workdir)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="github-stand-in", daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def authorized(self, header: str | None) -> bool:
        expected = "Basic " + base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return header == expected or header == f"Bearer {self.token}"


def _handler(stand_in: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            ok = stand_in.authorized(self.headers.get("Authorization"))
            path, _, query = self.path.partition("?")
            stand_in.seen.append(Seen(self.command, path, ok))
            body = self._body()
            if not ok:
                self._answer(401, b"token required\n", {"WWW-Authenticate": 'Basic realm="GitHub"'})
            elif path == "/api/user":
                self._json(200, USER)
            elif path == "/api/user/repos":
                self._json(200, [])  # the user's repos: none listed (tests clone by name)
            elif path.startswith("/api/repos/") and path.endswith("/pulls"):
                self._pulls(path.split("/")[3], path.split("/")[4], query, body)
            else:
                self._git(path, query, body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _git(self, path: str, query: str, body: bytes) -> None:
            env = {
                "PATH": os.environ.get("PATH", os.defpath),
                "GIT_PROJECT_ROOT": str(stand_in.remotes),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.environ.get("GIT_CONFIG_GLOBAL", os.devnull),
                "REMOTE_USER": "x-access-token",  # receive-pack is served to a known user
                "REMOTE_ADDR": "127.0.0.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            done = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = done.stdout.partition(b"\n\n")
            status, headers = 200, {}
            for line in head.decode(errors="replace").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers[name] = value.strip()
            self._answer(status, payload, headers)

        def _pulls(self, owner: str, name: str, query: str, body: bytes) -> None:
            """GitHub's pulls: GET lists the open ones of `head=owner:branch`; POST opens one, or 422."""
            mine = [p for p in stand_in.pulls if (p.owner, p.name) == (owner, name)]
            if self.command == "GET":
                head = parse_qs(query).get("head", [""])[0].split(":")[-1]
                found = [p for p in mine if p.body["head"] == head]
                self._json(200, [{"html_url": p.url, "number": p.number} for p in found])
                return
            asked = json.loads(body)
            bare = stand_in.remotes / owner / f"{name}.git"
            if not bare.is_dir():
                self._json(404, {"message": "Not Found"})
                return
            between = subprocess.run(
                ["git", "rev-list", "--count", f"{asked['base']}..{asked['head']}"],
                cwd=bare,
                capture_output=True,
                text=True,
                env={**os.environ, "GIT_CONFIG_GLOBAL": os.environ.get("GIT_CONFIG_GLOBAL", os.devnull)},
            )
            if between.returncode != 0 or between.stdout.strip() == "0":
                no_commits = f"No commits between {asked['base']} and {asked['head']}"
                self._json(422, {"message": "Validation Failed", "errors": [{"message": no_commits}]})
                return
            pull = Pull(owner, name, len(stand_in.pulls) + 1, asked)
            stand_in.pulls.append(pull)
            self._json(201, {"html_url": pull.url, "number": pull.number})

        def _json(self, status: int, value: Any) -> None:
            self._answer(status, json.dumps(value).encode(), {"Content-Type": "application/json"})

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
