"""The daemon's HTTP clients share one TLS context.

Each httpx client (and each transport) made without one builds its own and loads the CA bundle into it:
~2 MB of RSS apiece that the process never gives back (measured on httpx 0.28), for clients that mostly
talk plain HTTP on loopback (opencode, the probes). One context, made on first use, serves them all:
httpx's own choice of CAs ($SSL_CERT_FILE, else certifi's) for the few that speak HTTPS (GitHub, push
services).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The one TLS context of the daemon's clients."""
    global _context
    if _context is None:
        _context = httpx.create_ssl_context()
    return _context


def client(**kwargs: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` with the shared TLS context (`transport`, if given, must have it too)."""
    return httpx.AsyncClient(verify=tls_context(), **kwargs)


def unix_transport(path: str) -> httpx.AsyncHTTPTransport:
    """A transport to a unix socket, with the shared TLS context (it is never used, but made otherwise)."""
    return httpx.AsyncHTTPTransport(uds=path, verify=tls_context())
