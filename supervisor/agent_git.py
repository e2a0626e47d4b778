"""The agent's git: who its commits are by, and how its git and `gh` reach GitHub, all through its
environment (DESIGN §3): no credential store, no userinfo URL, no edit of the user's git config.

- **Identity**: `git.user_name` / `git.user_email`; when unset and a token is there, the GitHub user's
  own noreply identity (`<id>+<login>@users.noreply.github.com`, from `GET /user`), else a local one
  that says plainly where the commit came from. Given as GIT_AUTHOR_* / GIT_COMMITTER_*.
- **Credentials** (`git.agent_token`, on by default): the token as an `http.<origin>/.extraheader`
  through GIT_CONFIG_COUNT/KEY/VALUE, for the configured remote's origin alone, and as GH_TOKEN for the
  `gh` CLI. `agent_token = false` keeps the token out of the agent's reach: then only the daemon (the
  phone's publish actions) can push.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOCAL_NAME = "dancodes agent"
LOCAL_EMAIL = "dancodes-agent@localhost"
TOKEN_USER = "x-access-token"  # noqa: S105 - what GitHub expects as the user for a token over https


@dataclass(frozen=True)
class Identity:
    name: str
    email: str
    source: str  # "config", "github", "local": for the log line at start

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


def noreply_identity(user: Mapping[str, Any]) -> Identity | None:
    """GitHub's own noreply identity for the user `GET /user` answered, None if it lacks the fields."""
    login, uid = user.get("login"), user.get("id")
    if not isinstance(login, str) or not login or not isinstance(uid, int) or isinstance(uid, bool):
        return None
    name = user.get("name")
    display = name if isinstance(name, str) and name.strip() else login
    return Identity(display, f"{uid}+{login}@users.noreply.github.com", "github")


def choose_identity(name: str, email: str, github_user: Mapping[str, Any] | None) -> Identity:
    """Config first (either half may come from elsewhere), then GitHub's noreply, then local."""
    fallback = noreply_identity(github_user) if github_user is not None else None
    fallback = fallback or Identity(LOCAL_NAME, LOCAL_EMAIL, "local")
    if name or email:
        return Identity(name or fallback.name, email or fallback.email, "config")
    return fallback


def remote_origin(remote_url: str) -> str | None:
    """`https://host[:port]` of the configured remote; None when it is not https (no token sent)."""
    parts = urlsplit(remote_url.format(owner="o", name="n"))
    if parts.scheme != "https" or not parts.hostname:
        return None
    return f"https://{parts.netloc.rpartition('@')[2]}"


def token_header(token: str) -> str:
    """The header git sends for the token (Basic, as GitHub takes a token over https)."""
    return "Authorization: Basic " + base64.b64encode(f"{TOKEN_USER}:{token}".encode()).decode("ascii")


def credential_env(token: str | None, remote_url: str, *, agent_token: bool) -> dict[str, str]:
    """What lets the agent's git and gh reach GitHub: nothing without a token or with agent_token off."""
    origin = remote_origin(remote_url)
    if not token or not agent_token:
        return {}
    env = {"GH_TOKEN": token}
    if origin is not None:
        # GIT_CONFIG_COUNT config is git's "command line" scope: never written anywhere
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{origin}/.extraheader",
            GIT_CONFIG_VALUE_0=token_header(token),
        )
    return env
