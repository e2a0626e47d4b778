"""`dancodes init`: ask (or take flags with `--yes`), then write the config and the 0600 env file.

Run again, it shows what the files hold as the defaults and keeps what is not answered. It ends
with the command to run next. `dancodes` builds its command line from this module whatever the
command, so what only `init` needs (httpx, tomli_w, the TOML reader) is imported when it runs: the
daemon's `run` does not carry it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import DancodesError
from ..files import write_whole
from .plan import TLS_MODES, Answers, PlanError, parse_env, plan, render_env

if TYPE_CHECKING:
    from ..config import LoadedConfig

Ask = Callable[[str, str, bool], str]  # (question, default shown, secret) -> answer


def default_paths() -> tuple[Path, Path, str]:
    """The config, the env file and the data dir: system-wide for root, else the user's own."""
    if os.geteuid() == 0:
        return Path("/etc/dancodes/dancodes.toml"), Path("/etc/dancodes/dancodes.env"), "/var/lib/dancodes"
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "dancodes"
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "dancodes"
    return config_home / "dancodes.toml", config_home / "dancodes.env", str(data_home)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    config, env_file, _ = default_paths()
    parser.add_argument(
        "--yes", "-y", action="store_true", help="ask nothing: take the flags and the defaults"
    )
    parser.add_argument("--config", type=Path, default=config, help=f"the config to write (default {config})")
    parser.add_argument("--env-file", type=Path, default=env_file, help=f"the secrets (default {env_file})")
    parser.add_argument("--public-origin", metavar="URL", help="e.g. https://dancodes.example.com")
    parser.add_argument("--data-dir", metavar="DIR", help="repos, worktrees and state (absolute)")
    parser.add_argument(
        "--tls-mode",
        choices=TLS_MODES,
        help="off: plain HTTP (TLS at a proxy in front); internal: Caddy's local CA; "
        "acme: a certificate for your domain, on ports 443 and 80",
    )
    parser.add_argument("--tls-domain", metavar="NAME", help="for acme (default: the public origin's host)")
    parser.add_argument("--password", help="the login password (8+ characters)")
    parser.add_argument("--generate-password", action="store_true", help="make a login password")
    parser.add_argument(
        "--github-token", metavar="TOKEN", help="checked against the GitHub API when reachable"
    )
    parser.add_argument(
        "--provider-key",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="e.g. ANTHROPIC_API_KEY=sk-…",
    )
    parser.add_argument(
        "--replace-secrets", action="store_true", help="a new value replaces a secret already set"
    )


def run(args: argparse.Namespace, ask: Ask | None = None) -> int:
    try:
        return _run(args, ask)
    except (PlanError, DancodesError, OSError) as exc:
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        print(f"dancodes init: {text}{where}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, ask: Ask | None) -> int:
    import tomllib

    import tomli_w

    config_path: Path = args.config
    env_path: Path = args.env_file
    config = tomllib.loads(config_path.read_text()) if config_path.is_file() else {}
    env = parse_env(env_path.read_text()) if env_path.is_file() else {}
    keys: dict[str, str] = {}
    for item in args.provider_key:
        name, sep, value = item.partition("=")
        if not sep:
            raise PlanError(f"--provider-key '{name[:60]}' must be NAME=VALUE")
        keys[name.strip()] = value.strip()
    answers = Answers(
        public_origin=args.public_origin,
        data_dir=args.data_dir,
        tls_mode=args.tls_mode,
        tls_domain=args.tls_domain,
        password=args.password,
        generate_password=args.generate_password,
        github_token=args.github_token,
        provider_keys=keys,
        replace=args.replace_secrets,
    )
    if not args.yes:
        _interview(answers, config, env, ask or _ask)
    if not answers.data_dir and "data_dir" not in config:
        answers.data_dir = default_paths()[2]
    if "AUTH_PASSWORD" not in env and not answers.password and args.yes:
        answers.generate_password = True
    result = plan(config, env, answers)
    loaded = _validate(result.config, result.env, config_path)
    if answers.github_token:
        _check_github(answers.github_token, loaded.config.git.github_api)
    _write(config_path, tomli_w.dumps(result.config), 0o644)
    _write(env_path, render_env(result.env), 0o600)
    quiet = getattr(args, "verbosity", 0) < 0  # -q: only what cannot be found again
    if not quiet:
        print(f"dancodes init: wrote {config_path} and {env_path} (0600)")
        for key in result.replaced:
            print(f"dancodes init: replaced {key}")
        for key in result.kept:
            print(f"dancodes init: kept the {key} already set (--replace-secrets replaces it)")
    if result.generated_password:
        print(f"dancodes init: the login password is {result.generated_password} (also in {env_path})")
    if not quiet:
        if loaded.config.tls.mode == "acme":
            print("dancodes init: with acme, ports 443 and 80 of this machine must be reachable from the web")
        print(f"next: dancodes run --config {config_path} --env-file {env_path}")
    return 0


def _interview(answers: Answers, config: dict[str, Any], env: dict[str, str], ask: Ask) -> None:
    app = config.get("app", {})
    answers.public_origin = (
        ask("public origin (https://…, empty: from each request)", app.get("public_origin", ""), False)
        or answers.public_origin
    )
    answers.data_dir = (
        ask("data dir", str(config.get("data_dir") or default_paths()[2]), False) or answers.data_dir
    )
    tls = config.get("tls", {})
    answers.tls_mode = (
        ask(
            "TLS: off (a proxy in front does it, or plain HTTP), internal (Caddy's local CA), "
            "acme (a certificate for your domain, ports 443 and 80)",
            tls.get("mode", "off"),
            False,
        )
        or answers.tls_mode
    )
    if (answers.tls_mode or tls.get("mode")) == "acme":
        origin_host = urlsplit(answers.public_origin or app.get("public_origin", "")).hostname or ""
        answers.tls_domain = (
            ask("the domain for the certificate", tls.get("domain") or origin_host, False)
            or answers.tls_domain
        )
    have = "AUTH_PASSWORD" in env
    password = ask(
        "login password (empty: " + ("keep it" if have else "make one") + ")", "(set)" if have else "", True
    )
    if password:
        answers.password, answers.replace = password, answers.replace or have
    elif not have:
        answers.generate_password = True
    token = ask(
        "GitHub token (repo scope; empty: " + ("keep it" if "GITHUB_TOKEN" in env else "none") + ")", "", True
    )
    if token:
        answers.github_token, answers.replace = token, answers.replace or "GITHUB_TOKEN" in env
    provider = ask("a provider key, NAME=VALUE (empty: none)", "", True)
    if provider:
        name, _, value = provider.partition("=")
        answers.provider_keys[name.strip()] = value.strip()


def _ask(question: str, default: str, secret: bool) -> str:
    import getpass

    prompt = f"{question}{f' [{default}]' if default else ''}: "
    if secret and sys.stdin.isatty():
        return getpass.getpass(prompt).strip()
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    answer = line.strip()
    return "" if answer == default else answer


def _check_github(token: str, api: str) -> None:
    """Refuse a token GitHub refuses; say so and go on when GitHub cannot be reached."""
    import httpx

    from .. import github

    url = api.rstrip("/") + "/user"
    try:
        response = httpx.get(url, headers=github.api_headers(token), timeout=5)
    except httpx.HTTPError:
        print("dancodes init: could not reach the GitHub API to check the token; kept unchecked")
        return
    if response.status_code in (401, 403):
        raise PlanError(f"GitHub refused the token (HTTP {response.status_code}): nothing was written")
    if response.status_code == 200:
        login = (
            response.json().get("login", "?") if "json" in response.headers.get("content-type", "") else "?"
        )
        print(f"dancodes init: the GitHub token is {login}'s")


def _validate(config: dict[str, Any], env: dict[str, str], config_path: Path) -> LoadedConfig:
    """What `dancodes run` checks first: the config as a whole, and the secrets of the wall."""
    import tomli_w

    from .. import tls
    from ..auth.keys import AuthSecrets
    from ..auth.origin import configured_origin
    from ..config import load_config

    trial = config_path.with_name(f".{config_path.name}.check")
    trial.parent.mkdir(parents=True, exist_ok=True)
    try:
        trial.write_text(tomli_w.dumps(config))
        loaded = load_config(trial)
    finally:
        trial.unlink(missing_ok=True)
    AuthSecrets.from_env(env)
    settings = loaded.config
    origin = configured_origin(settings.app.public_origin, {**env, **os.environ}) or ""
    tls.caddy_env(
        settings.tls.mode, settings.tls.domain, origin, settings.ports.public
    )  # acme needs a domain
    return loaded


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, text, mode=mode)
