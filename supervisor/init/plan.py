"""What `dancodes init` writes, decided from what the files hold now and what was answered. Pure.

The config (TOML) holds no secret; the env file (`KEY=value` lines, 0600) holds them all:
AUTH_PASSWORD, AUTH_SECRET, GITHUB_TOKEN and provider keys (`*_API_KEY`). A re-run starts from
the files: an answer left empty keeps what is there, and a secret is never replaced silently: a
new value for one that exists replaces it only when the caller says so (`replace`), and the plan
says which were replaced. AUTH_SECRET is made once and kept; replacing it moves the old one to
AUTH_SECRET_PREVIOUS, so signed-in phones stay signed in for the rotation window.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..auth.origin import normalize_origin

#: a provider key the agent's environment passes (see supervisor/agent.py)
PROVIDER_KEY = re.compile(r"[A-Z][A-Z0-9_]*_API_KEY")
_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]*")
TLS_MODES = ("off", "internal", "acme")


class PlanError(ValueError):
    """An answer that cannot be used: the message names it, in one line."""


@dataclass
class Answers:
    """What the user gave; None or "" means "keep what is there (or the default)"."""

    public_origin: str | None = None
    data_dir: str | None = None
    tls_mode: str | None = None  # off | internal | acme (supervisor.tls)
    tls_domain: str | None = None
    password: str | None = None
    generate_password: bool = False
    github_token: str | None = None
    provider_keys: dict[str, str] = field(default_factory=dict)
    replace: bool = False  # a new value may replace an existing secret


@dataclass
class Plan:
    config: dict[str, Any]
    env: dict[str, str]
    replaced: list[str]  # secrets that had another value
    kept: list[str]  # secrets given that differ from the file's, kept because `replace` was not given
    generated_password: str | None  # to show once


def plan(config: dict[str, Any], env: dict[str, str], answers: Answers) -> Plan:
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    env = dict(env)
    replaced: list[str] = []
    kept: list[str] = []

    if answers.public_origin:
        origin = normalize_origin(answers.public_origin.strip())
        if origin is None:
            raise PlanError(
                f"public origin '{answers.public_origin[:100]}' is not like https://dancodes.example.com"
            )
        config.setdefault("app", {})["public_origin"] = origin
    if answers.data_dir:
        if not answers.data_dir.startswith("/"):
            raise PlanError(f"data dir '{answers.data_dir[:100]}' must be an absolute path")
        config["data_dir"] = answers.data_dir
    if answers.tls_mode:
        if answers.tls_mode not in TLS_MODES:
            raise PlanError(f"TLS mode '{answers.tls_mode[:20]}' is not one of {', '.join(TLS_MODES)}")
        config.setdefault("tls", {})["mode"] = answers.tls_mode
    if answers.tls_domain:
        config.setdefault("tls", {})["domain"] = answers.tls_domain.strip()

    def put(key: str, value: str) -> None:
        old = env.get(key)
        if old is None or old == value:
            env[key] = value
        elif answers.replace:
            env[key] = value
            replaced.append(key)
        else:
            kept.append(key)

    generated = None
    if answers.generate_password and (answers.replace or "AUTH_PASSWORD" not in env):
        generated = secrets.token_urlsafe(12)
        put("AUTH_PASSWORD", generated)
    elif answers.password:
        if len(answers.password) < 8:
            raise PlanError("the login password must be at least 8 characters")
        put("AUTH_PASSWORD", answers.password)
    if "AUTH_PASSWORD" not in env:
        raise PlanError("a login password is needed: give one, or ask for one to be made")
    if "AUTH_SECRET" not in env:
        env["AUTH_SECRET"] = secrets.token_urlsafe(32)
    if answers.github_token:
        put("GITHUB_TOKEN", answers.github_token.strip())
    for name, value in answers.provider_keys.items():
        if not PROVIDER_KEY.fullmatch(name):
            raise PlanError(f"provider key name '{name[:60]}' must look like ANTHROPIC_API_KEY")
        if value:
            put(name, value)
    return Plan(config=config, env=env, replaced=replaced, kept=kept, generated_password=generated)


def parse_env(text: str) -> dict[str, str]:
    """`KEY=value` lines (what systemd's EnvironmentFile and sh both read); comments and blanks skipped."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def render_env(env: dict[str, str]) -> str:
    """The env file: one `KEY=value` a line, values quoted only when they must be (systemd and sh agree)."""
    lines = ["# dancodes secrets (dancodes init): keep this file 0600, never commit it"]
    for key in sorted(env):
        value = env[key]
        if "\n" in value or "'" in value:
            raise PlanError(f"{key}: a value may not hold a newline or a single quote")
        lines.append(f"{key}={value}" if _SAFE.fullmatch(value) else f"{key}='{value}'")
    return "\n".join(lines) + "\n"
