"""A small client for the few opencode calls the daemon makes itself: sessions, busy ones, dispose.

Measured on 1.18.33: every route outside /global boots the instance of the directory it names
(or of opencode's own cwd); `/api/session/active` does not see turns started with the v1 API, so
"busy" is asked of `/session/status` one directory at a time; and a turn runs in the directory
stored on the session, whatever `x-opencode-directory` a prompt names.

The web app talks to opencode directly through Caddy; the daemon asks only what GC and the
idle-instance janitor need, on loopback, with short timeouts. Anything unexpected is an
`OpencodeError`, so a caller that cannot tell whether a chat is live does nothing destructive.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from . import http
from .errors import OpencodeError

_DIRECTORY = "x-opencode-directory"
#: The user name opencode expects with OPENCODE_SERVER_PASSWORD (its OPENCODE_SERVER_USERNAME default)
OPENCODE_USER = "opencode"


def basic_auth(password: str) -> str:
    """The Authorization header value for opencode's server password."""
    return "Basic " + base64.b64encode(f"{OPENCODE_USER}:{password}".encode()).decode("ascii")


#: opencode writes a heartbeat on its event streams every 10 s; three missed ones mean a dead stream
EVENT_READ_TIMEOUT = 30.0
#: for the answer to start; the probes' own per-try timeout while opencode starts is shorter still
EVENT_ANSWER_TIMEOUT = 2.0


@dataclass(frozen=True)
class Session:
    id: str
    directory: str
    updated: float  # epoch seconds
    created: float = 0.0  # epoch seconds
    title: str = ""


class OpencodeClient:
    """Async calls to one opencode server; `base_url` like `http://127.0.0.1:4096`."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url
        self._client = http.client(base_url=base_url, timeout=timeout)

    def authenticate(self, password: str) -> None:
        """Send opencode's server password (HTTP Basic, user `opencode`) with every call."""
        self._client.auth = httpx.BasicAuth(OPENCODE_USER, password)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OpencodeError(f"opencode did not answer {method} {path}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise OpencodeError(f"opencode answered {method} {path} with {response.status_code}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise OpencodeError(f"opencode answered {method} {path} with something not JSON") from None

    async def health(self) -> dict[str, Any]:
        """`/global/health`: `{"healthy": true, "version": "1.18.33"}`."""
        body = await self._call("GET", "/global/health")
        if not isinstance(body, dict):
            raise OpencodeError("opencode's health answer is not a JSON object")
        return body

    async def sessions(self) -> dict[str, Session]:
        """Every session of every project, archived ones included, by id."""
        items = await self._call(
            "GET", "/experimental/session", params={"limit": 100_000, "archived": "true"}
        )
        if not isinstance(items, list):
            raise OpencodeError("opencode's session list is not a list")
        found: dict[str, Session] = {}
        for item in items:
            try:
                found[item["id"]] = Session(
                    id=item["id"],
                    directory=item.get("directory", ""),
                    updated=item["time"]["updated"] / 1000,
                    created=item["time"].get("created", 0) / 1000,
                    title=str(item.get("title", "")),
                )
            except (KeyError, TypeError):
                continue
        return found

    async def title(self, session_id: str) -> str:
        """The session's title; "" when opencode does not know it or cannot be asked. Read from the session
        list, which boots no instance (`GET /session/{id}` boots the chat's)."""
        try:
            session = (await self.sessions()).get(session_id)
        except OpencodeError:
            return ""
        return session.title.strip() if session is not None else ""

    async def busy(self, directory: str) -> set[str]:
        """Ids of the sessions with a turn running in `directory`'s instance.

        Asking boots the instance if it is not loaded; call it only for a directory about to be
        disposed or deleted anyway, or one known to be in use.
        """
        body = await self._call("GET", "/session/status", headers={_DIRECTORY: directory})
        if not isinstance(body, dict):
            raise OpencodeError("opencode's session status has an unexpected shape")
        return {
            sid for sid, status in body.items() if isinstance(status, dict) and status.get("type") != "idle"
        }

    async def reply_finished(self, session_id: str, directory: str) -> bool:
        """Whether the session's last message is a reply that ended (done or failed): not a prompt left
        unanswered, nor a reply still open (`time.completed` unset) because opencode went away mid-turn."""
        messages = await self._call("GET", f"/session/{session_id}/message", headers={_DIRECTORY: directory})
        if not isinstance(messages, list):
            raise OpencodeError("opencode's message list is not a list")
        if not messages:
            return True
        info = messages[-1].get("info") if isinstance(messages[-1], dict) else None
        if not isinstance(info, dict):
            raise OpencodeError("opencode's message has an unexpected shape")
        if info.get("role") != "assistant":
            return False
        completed = (info.get("time") or {}).get("completed")
        return bool(completed) or info.get("error") is not None

    async def prompt(self, session_id: str, directory: str, text: str) -> None:
        """Send `text` as the user's next prompt (answered in the background)."""
        body = {"parts": [{"type": "text", "text": text}]}
        await self._call(
            "POST", f"/session/{session_id}/prompt_async", headers={_DIRECTORY: directory}, json=body
        )

    async def abort(self, session_id: str, directory: str) -> None:
        await self._call("POST", f"/session/{session_id}/abort", headers={_DIRECTORY: directory})

    async def move_session(self, session_id: str, directory: str) -> None:
        """Make `directory` the session's own: its turns run there, whatever directory a request names.

        A chat is created before its worktree (the worktree is named after the chat's id), so it
        starts out in the repo's clone; this moves it into its worktree.
        """
        await self._call(
            "POST",
            "/experimental/control-plane/move-session",
            json={"sessionID": session_id, "destination": {"directory": directory}},
            headers={_DIRECTORY: directory},
        )

    async def dispose(self, directory: str) -> None:
        """Dispose the per-directory instance: its watchers, LSP and MCP children, its tools."""
        await self._call("POST", "/instance/dispose", headers={_DIRECTORY: directory})

    async def follow_events(
        self, on_event: Callable[[str, dict[str, Any]], None], *, on_connected: Callable[[], None]
    ) -> None:
        """Feed `on_event(directory, event)` every event of every instance (`/global/event`).

        Following it boots no instance. Returns when the stream ends (opencode stopped or went
        silent past `EVENT_READ_TIMEOUT`); `on_connected` is called once the stream is open.
        """
        timeout = httpx.Timeout(self._client.timeout.connect, read=EVENT_READ_TIMEOUT)
        request = self._client.build_request("GET", "/global/event", timeout=timeout)
        response: httpx.Response | None = None
        try:
            # a request that reaches opencode in the instant before it serves is never answered
            with trio.move_on_after(EVENT_ANSWER_TIMEOUT):
                response = await self._client.send(request, stream=True)
            if response is None:
                raise OpencodeError("opencode did not answer GET /global/event")
            if response.status_code != 200:
                raise OpencodeError(f"opencode answered GET /global/event with {response.status_code}")
            on_connected()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                try:
                    item = json.loads(line[5:])
                    directory, event = item.get("directory") or "", item["payload"]
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # not one of opencode's events: nothing to learn from it
                if isinstance(event, dict):
                    on_event(str(directory), event)
        except httpx.HTTPError as exc:
            raise OpencodeError(f"opencode's event stream ended: {type(exc).__name__}") from None
        finally:
            if response is not None:
                with trio.CancelScope(shield=True):
                    await response.aclose()
