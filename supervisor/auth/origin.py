"""Where a request comes from: the site's own origin, the CSRF check, and browser navigations.

Headers are given as a mapping with lowercase names (see `header_map`). A state-changing request
must come from the site's own origin: `Sec-Fetch-Site` says so when the browser sends it (every
current browser does), else `Origin` must be the site's origin; a request with neither is refused,
since any browser that could carry the cookie sends one of them on a POST.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError

HeaderMap = Mapping[str, str]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def header_map(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lowercase names; repeated fields joined as HTTP joins them (cookies with '; ')."""
    headers: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in headers:
            headers[key] += ("; " if key == "cookie" else ", ") + value
        else:
            headers[key] = value
    return headers


def normalize_origin(text: str) -> str | None:
    """`scheme://host[:port]`, lowercased, default port dropped; None unless it is an http(s) origin."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def configured_origin(public_origin: str, environ: Mapping[str, str]) -> str | None:
    """app.public_origin, else $DANCODES_PUBLIC_ORIGIN, else None (derive it from each request)."""
    for source, value in (
        ("app.public_origin", public_origin),
        ("DANCODES_PUBLIC_ORIGIN", environ.get("DANCODES_PUBLIC_ORIGIN", "")),
    ):
        if value:
            origin = normalize_origin(value)
            if origin is None:
                raise ConfigError(
                    f"{source}: '{value[:100]}' is not an origin like https://dancodes.example.com",
                    key=source,
                )
            return origin
    return None


def request_origin(headers: HeaderMap) -> str | None:
    """The origin the client addressed, as Caddy reports it: X-Forwarded-Proto and -Host, else Host."""
    proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip().lower()
    host = headers.get("x-forwarded-host") or headers.get("host")
    if not host or proto not in _DEFAULT_PORTS:
        return None
    return normalize_origin(f"{proto}://{host.split(',')[0].strip()}")


def csrf_refusal(method: str, headers: HeaderMap, allowed: str | None) -> str | None:
    """Why a request must be refused as cross-site, or None when it may go on."""
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site.strip().lower() in ("same-origin", "none"):  # none: the user typed it or chose a bookmark
            return None
        return f"Sec-Fetch-Site is '{_clip(site)}'"
    origin = headers.get("origin")
    if origin is None:
        return "the request has neither Sec-Fetch-Site nor Origin"
    if allowed is None:
        return "the site's own origin is unknown (no Host header)"
    if normalize_origin(origin) != allowed:
        return f"Origin '{_clip(origin)}' is not {allowed}"
    return None


def is_navigation(method: str, headers: HeaderMap) -> bool:
    """A browser loading a page (show it the login page) rather than a script calling an API (401)."""
    mode = headers.get("sec-fetch-mode")
    if mode is not None:
        return mode.strip().lower() == "navigate"
    return method.upper() == "GET" and "text/html" in headers.get("accept", "")


def _clip(value: str) -> str:
    return value[:60].encode("ascii", "backslashreplace").decode()
