"""The whole product for integration tests: the daemon with real opencode and Caddy, a scripted LLM,
and bare git remotes standing in for GitHub; clients that go through Caddy like a phone would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_PASSWORD, DaemonProc, daemon_env, defaults_if_free, launch_daemon, toml_value
from tests.gitutil import Remote, make_remote
from tests.llm import ScriptedLLM, opencode_config, opencode_xdg


@dataclass
class Stack:
    daemon: DaemonProc
    llm: ScriptedLLM
    root: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.ports['public']}"

    @property
    def remotes(self) -> Path:
        return self.root / "remotes"

    def remote(self, owner: str, name: str) -> Remote:
        """A bare repo `owner/name` that the daemon clones as if from GitHub."""
        return make_remote(self.remotes, self.root / "dev" / owner / name, owner, name)

    def chat(self, client: httpx.Client, owner: str, name: str) -> tuple[str, Path]:
        """A chat of `owner/name` in its own worktree, as the app makes one: the remote, its clone, a session
        made in the clone, then the worktree it moves to. (session id, worktree path)"""
        self.remote(owner, name)
        cloned = client.post("/admin/repos/clone", json={"repo": f"{owner}/{name}", "wait": True})
        assert cloned.status_code in (200, 201), cloned.text
        clone = cloned.json()["repo"]["path"]
        session = client.post("/session", headers={"x-opencode-directory": clone}, json={})
        assert session.status_code == 200, session.text
        session_id: str = session.json()["id"]
        made = client.post("/admin/worktrees", json={"repo": f"{owner}/{name}", "session_id": session_id})
        assert made.status_code == 201, made.text
        return session_id, Path(made.json()["worktree"]["path"])

    def anonymous(self) -> httpx.Client:
        """A client without the cookie; it sends the page's Origin like a browser's fetch does."""
        return httpx.Client(base_url=self.url, headers={"Origin": self.url}, timeout=30)

    @contextmanager
    def signed_in(self) -> Iterator[httpx.Client]:
        client = self.login()
        try:
            yield client
        finally:
            client.close()

    def login(self, client: httpx.Client | None = None) -> httpx.Client:
        client = client or self.anonymous()
        response = client.post("/auth/login", data={"password": TEST_PASSWORD, "next": "/"})
        assert response.status_code == 303, response.text
        return client


def without_ceiling(extra: str) -> str:
    """`extra` with opencode's memory ceiling out of the way: a stack runs many chats in one opencode,
    past the default sized for a 1 GB machine (supervisor.memory). Tests of the ceiling pass
    memory_ceiling=True."""
    header = "[services.opencode]\n"
    keys = "memory_limit_mb = 65536\nmemory_hard_limit_mb = 65536\n"
    if header in extra:
        return extra.replace(header, header + keys, 1)
    return f"{extra}\n{header}{keys}"


@contextmanager
def running_stack(
    root: Path,
    extra: str = "",
    *,
    env: dict[str, str] | None = None,
    production_ports: bool = True,
    provider_file: Path | None = None,
    remote_url: str | None = None,
    opencode_extra: dict[str, Any] | None = None,
    memory_ceiling: bool = False,
) -> Iterator[Stack]:
    """Start the stack under `root`; stop the daemon (by pid) and the LLM after.

    The scripted provider reaches opencode as `OPENCODE_CONFIG_CONTENT`, or, with `provider_file`, as
    the user's `OPENCODE_CONFIG` file written there (JSONC, readable by root alone, asking for sharing,
    which the daemon must keep disabled).
    """
    with ScriptedLLM() as llm:
        env = {**daemon_env(root), **(env or {})}
        if provider_file is None:
            env["OPENCODE_CONFIG_CONTENT"] = opencode_config(llm.base_url, **(opencode_extra or {}))
        else:
            user_config = opencode_config(llm.base_url, share="auto", autoupdate=True)
            provider_file.write_text("// the user's own providers\n" + user_config)
            provider_file.chmod(0o600)
            env["OPENCODE_CONFIG"] = str(provider_file)
            env.pop("OPENCODE_CONFIG_CONTENT", None)
        remote_url = remote_url or f"file://{root / 'remotes'}/{{owner}}/{{name}}.git"
        # the daemon's XDG layout for opencode, pre-seeded so no plugin install reaches the network
        opencode_xdg(root / "daemon" / "data" / "opencode")
        daemon = launch_daemon(
            root / "daemon",
            f"[git]\nremote_url = {toml_value(remote_url)}\n"
            + (extra if memory_ceiling else without_ceiling(extra)),
            env=env,
            ports=defaults_if_free() if production_ports else None,
        )
        try:
            daemon.wait_for(lambda: daemon.service("caddy")["state"] == "running", 30, "caddy running")
            yield Stack(daemon=daemon, llm=llm, root=root)
        finally:
            daemon.stop()
