"""Is it a browser's push subscription? `PushSubscription.toJSON()`: an endpoint and two keys.

An endpoint is where the daemon will POST: https, or http on a loopback address (the tests' push
service); anything else would send the payload in the clear, or let a page aim the daemon at the
local network. `keys.p256dh` is the browser's P-256 public key (an uncompressed point on the curve),
`keys.auth` its 16-byte secret (RFC 8291). A bad one is refused here, in one line, before anything is
kept: a key that does not decode would only fail later, at every push.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import urlsplit

from ..errors import InvalidSubscription

MAX_ENDPOINT = 2048  # characters; browsers' endpoints are a few hundred
_SHOWN = 80  # characters of a refused endpoint the error repeats

# P-256 (secp256r1): y^2 = x^3 - 3x + b over the prime field p (SEC 2, section 2.4.2)
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


def b64url_decode(text: str) -> bytes:
    """Base64url with or without its padding; ValueError when it is not that."""
    if not text or any(c in text for c in "+/ \t\r\n"):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_loopback(host: str) -> bool:
    """localhost or 127.0.0.0/8."""
    if host == "localhost":
        return True
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str) -> str:
    """The endpoint, when the daemon may POST pushes to it; else InvalidSubscription."""
    shown = endpoint[:_SHOWN] + ("…" if len(endpoint) > _SHOWN else "")
    if len(endpoint) > MAX_ENDPOINT:
        raise InvalidSubscription(f"endpoint: longer than {MAX_ENDPOINT} characters")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidSubscription(f"endpoint: not a URL: {shown}") from None
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidSubscription(f"endpoint: not a push service's URL: {shown}")
    if ":" in host:  # VAPID's `aud` (py-vapid) takes a host name or IPv4 only; no push service has one
        raise InvalidSubscription(f"endpoint: an IPv6 address is not supported: {shown}")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return endpoint
    raise InvalidSubscription(f"endpoint: must be https (http only on loopback): {shown}")


def check_p256dh(text: str) -> bytes:
    """The browser's public key as its 65 bytes, when it is a point on P-256; else InvalidSubscription."""
    try:
        raw = b64url_decode(text)
    except ValueError:
        raw = b""
    if len(raw) == 65 and raw[0] == 4:
        x, y = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
        if x < _P and y < _P and (y * y - (x * x * x - 3 * x + _B)) % _P == 0:
            return raw
    raise InvalidSubscription("keys.p256dh: not a P-256 public key (65 bytes, uncompressed, base64url)")


def check_auth(text: str) -> bytes:
    """The browser's auth secret as its 16 bytes; else InvalidSubscription."""
    try:
        raw = b64url_decode(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise InvalidSubscription("keys.auth: not a 16-byte secret in base64url")
    return raw


def origin_of(endpoint: str) -> str:
    """`scheme://host[:port]` of a checked endpoint: the VAPID `aud`, and what listings show."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
