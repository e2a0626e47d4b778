"""Health probes: an HTTP GET with a hard, total timeout.

A wedged service accepts the TCP connection (the kernel does that) and then never answers, so
the timeout bounds the whole exchange, not each step of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import trio

from . import http
from .config import Probe


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str  # "200", "timed out after 0.25s", "connection refused" …


class HttpProbe:
    """Probes one URL, over TCP or a unix socket; call `aclose` when done."""

    def __init__(self, probe: Probe, *, headers: Mapping[str, str] | None = None) -> None:
        """`headers` go with every probe (opencode's Basic auth)."""
        assert probe.url is not None
        self.url = probe.url
        self.timeout = probe.timeout
        transport = http.unix_transport(probe.unix_socket) if probe.unix_socket else None
        # No keep-alive: every probe proves that the service still accepts and answers.
        self._client = http.client(
            transport=transport,
            timeout=probe.timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers=dict(headers or {}),
        )

    async def check(self, timeout: float | None = None) -> ProbeResult:
        """One GET; `timeout` (default: the probe's) bounds all of it."""
        timeout = timeout or self.timeout
        with trio.move_on_after(timeout):
            try:
                response = await self._client.get(self.url, timeout=timeout)
            except httpx.TimeoutException:
                return ProbeResult(False, f"timed out after {timeout:g}s")
            except httpx.HTTPError as exc:
                return ProbeResult(False, _describe(exc))
            ok = 200 <= response.status_code < 400
            return ProbeResult(ok, f"HTTP {response.status_code}")
        return ProbeResult(False, f"timed out after {timeout:g}s")

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._client.aclose()


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "No such file" in text or "Errno 2" in text:
        return "socket missing"
    return text.splitlines()[0][:200]
