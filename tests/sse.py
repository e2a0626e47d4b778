"""An SSE reader for opencode's `/event` stream in tests, directly or through Caddy with the cookie.

It reads `/global/event` too: each `{directory, payload}` there is kept as the payload with the
`directory` added, so the same matchers work on both."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class EventStream:
    """`GET /event` for one directory, read by a background thread into `events`."""

    url: str
    directory: Path
    cookies: httpx.Cookies | None = None  # the login cookie, for a stream through Caddy
    auth: httpx.Auth | None = None  # opencode's password, for a stream straight from opencode
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # monotonic time each event was read
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None), cookies=self.cookies, auth=self.auth)

    def start(self, ready: str = "server.connected") -> EventStream:
        """Read in the background; return once the stream's first event (`ready`) came."""
        threading.Thread(target=self._read, name="opencode-events", daemon=True).start()
        self.wait_for(lambda e: e["type"] == ready, 10)
        return self

    def _read(self) -> None:
        headers = {"x-opencode-directory": str(self.directory)}
        try:
            with self._client.stream("GET", self.url, headers=headers) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line[len("data: ") :])
                        if "payload" in event:  # /global/event
                            event = {**event["payload"], "directory": event.get("directory")}
                        with self._cond:
                            self.events.append(event)
                            self.arrived.append(time.monotonic())
                            self._cond.notify_all()
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass  # the stream ends when the test closes the client or opencode stops

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e["type"] for e in self.events]
                    raise AssertionError(f"no matching event in {timeout} s; saw {seen}")
                self._cond.wait(left)

    def of_session(self, session_id: str, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [
                e for e in self.events if e["type"] == kind and e["properties"].get("sessionID") == session_id
            ]

    def close(self) -> None:
        self._client.close()
