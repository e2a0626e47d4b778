"""`dancodes init`: the plan it makes (pure), and the command as a user runs it, in an empty HOME."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from supervisor.auth import AuthWall
from supervisor.config import load_config
from supervisor.init.plan import Answers, PlanError, parse_env, plan, render_env

ROOT = Path(__file__).resolve().parent.parent


# -- the plan ---------------------------------------------------------------------------------------


def test_a_first_run_makes_the_secrets_it_needs() -> None:
    made = plan({}, {}, Answers(public_origin="https://DC.example.com/", generate_password=True))
    assert made.config == {"app": {"public_origin": "https://dc.example.com"}}
    assert made.generated_password == made.env["AUTH_PASSWORD"]
    assert len(made.env["AUTH_SECRET"]) >= 32
    assert made.replaced == []


def test_a_rerun_keeps_every_secret_unless_told_to_replace_it() -> None:
    env = {"AUTH_PASSWORD": "old-password", "AUTH_SECRET": "s" * 40, "GITHUB_TOKEN": "ghp_old"}
    kept = plan({}, env, Answers(password="new-password", github_token="ghp_new"))
    assert kept.env == env
    assert sorted(kept.kept) == ["AUTH_PASSWORD", "GITHUB_TOKEN"]
    replaced = plan({}, env, Answers(password="new-password", github_token="ghp_new", replace=True))
    assert (replaced.env["AUTH_PASSWORD"], replaced.env["GITHUB_TOKEN"]) == ("new-password", "ghp_new")
    assert replaced.env["AUTH_SECRET"] == env["AUTH_SECRET"]  # made once, kept
    assert sorted(replaced.replaced) == ["AUTH_PASSWORD", "GITHUB_TOKEN"]
    same = plan({}, env, Answers(github_token="ghp_old"))
    assert (same.kept, same.replaced) == ([], [])


@pytest.mark.parametrize(
    ("answers", "says"),
    [
        (Answers(public_origin="ftp://x", generate_password=True), "public origin 'ftp://x'"),
        (Answers(password="short"), "at least 8"),
        (Answers(), "a login password is needed"),
        (Answers(generate_password=True, data_dir="relative/dir"), "absolute"),
        (Answers(generate_password=True, provider_keys={"anthropic": "x"}), "ANTHROPIC_API_KEY"),
        (Answers(generate_password=True, tls_mode="on"), "TLS mode 'on' is not one of off, internal, acme"),
    ],
)
def test_bad_answers_are_one_line(answers: Answers, says: str) -> None:
    with pytest.raises(PlanError, match=says) as raised:
        plan({}, {}, answers)
    assert "\n" not in str(raised.value)


def test_the_env_file_reads_back_what_was_written() -> None:
    env = {"A_API_KEY": "plain-1.2", "B_API_KEY": "with space & $dollar", "AUTH_PASSWORD": 'double"quote'}
    assert parse_env(render_env(env)) == env
    assert parse_env("# c\n\nexport X=1\nY='two words'\nnot a line\n") == {"X": "1", "Y": "two words"}
    with pytest.raises(PlanError, match="newline"):
        render_env({"K": "a\nb"})


# -- the command ------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def init(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "init", *args],
        cwd=home,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_yes_writes_what_run_accepts_and_a_rerun_keeps_the_secrets(home: Path) -> None:
    config, env_file = home / "dc" / "dancodes.toml", home / "dc" / "dancodes.env"
    where = ["--config", str(config), "--env-file", str(env_file), "--data-dir", str(home / "data")]
    first = init(home, "--yes", *where, "--public-origin", "https://dc.example.com",
                 "--provider-key", "ANTHROPIC_API_KEY=sk-test")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout.strip().splitlines()[-1] == f"next: dancodes run --config {config} --env-file {env_file}"
    )
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    secrets = parse_env(env_file.read_text())
    assert secrets["ANTHROPIC_API_KEY"] == "sk-test"
    assert f"the login password is {secrets['AUTH_PASSWORD']}" in first.stdout
    assert "sk-test" not in config.read_text()  # the config holds no secret

    # what `dancodes run --config … --env-file …` checks before it starts anything
    loaded = load_config(config)
    assert (str(loaded.paths.data_dir), loaded.config.app.public_origin) == (
        str(home / "data"),
        "https://dc.example.com",
    )
    AuthWall.from_config(loaded, secrets)

    again = init(home, "--yes", *where, "--password", "a-new-password")
    assert again.returncode == 0, again.stderr
    assert "kept the AUTH_PASSWORD already set" in again.stdout
    assert parse_env(env_file.read_text()) == secrets

    # the questions show what the files hold; an empty answer keeps it
    asked = init(home, *where, stdin="\n\n\n\n\n\n")
    assert asked.returncode == 0, asked.stderr
    assert "[https://dc.example.com]" in asked.stdout
    assert "[off]" in asked.stdout  # the TLS mode's default
    assert parse_env(env_file.read_text()) == secrets

    # TLS asked: acme, for the origin's host unless another domain is typed
    acme = init(home, *where, stdin="\n\nacme\n\n\n\n\n")
    assert acme.returncode == 0, acme.stderr
    assert "[dc.example.com]" in acme.stdout
    assert "ports 443 and 80 of this machine must be reachable" in acme.stdout
    tls = load_config(config).config.tls
    assert (tls.mode, tls.domain) == ("acme", "")
    assert load_config(config).services["caddy"].owned_ports() == [443, 80]


def test_tls_by_flags_and_acme_without_a_domain_writes_nothing(home: Path) -> None:
    config, env_file = home / "c.toml", home / "e.env"
    where = ["--yes", "--config", str(config), "--env-file", str(env_file)]
    refused = init(home, *where, "--tls-mode", "acme")  # no public origin, no domain
    assert refused.returncode == 2
    assert refused.stderr == (
        "dancodes init: tls.mode: acme needs a domain name (tls.domain, or the host of app.public_origin), "
        "not 'nothing'\n"
    )
    assert not config.exists()
    assert not env_file.exists()
    made = init(home, *where, "--tls-mode", "internal")
    assert made.returncode == 0, made.stderr
    assert load_config(config).config.tls.mode == "internal"
    domain = init(home, *where, "--tls-mode", "acme", "--tls-domain", "code.example.com")
    assert domain.returncode == 0, domain.stderr
    tls = load_config(config).config.tls
    assert (tls.mode, tls.domain) == ("acme", "code.example.com")


def test_bad_input_writes_nothing(home: Path) -> None:
    config = home / "c.toml"
    refused = init(home, "--yes", "--config", str(config), "--env-file", str(home / "e.env"),
                   "--public-origin", "not an origin")  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "dancodes init: public origin" in refused.stderr
    assert not config.exists()
    assert not (home / "e.env").exists()


class _GitHub(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        good = self.headers.get("Authorization") == "Bearer ghp_good"
        body = json.dumps({"login": "octocat"} if good else {"message": "Bad credentials"}).encode()
        self.send_response(200 if good else 401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def github() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_github_token_is_checked_and_a_refused_one_writes_nothing(home: Path, github: str) -> None:
    config, env_file = home / "c.toml", home / "e.env"
    config.write_text(f'[git]\ngithub_api = "{github}"\n')
    where = ["--yes", "--config", str(config), "--env-file", str(env_file), "--generate-password"]
    refused = init(home, *where, "--github-token", "ghp_revoked")
    assert refused.returncode == 2
    assert "GitHub refused the token (HTTP 401)" in refused.stderr
    assert not env_file.exists()
    accepted = init(home, *where, "--github-token", "ghp_good")
    assert accepted.returncode == 0, accepted.stderr
    assert "the GitHub token is octocat's" in accepted.stdout
    assert parse_env(env_file.read_text())["GITHUB_TOKEN"] == "ghp_good"
