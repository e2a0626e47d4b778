"""The session cookie's value: signed with itsdangerous, dated, and checked against the clock.

A cookie is `v1.<timestamp>.<signature>` from `TimestampSigner` (HMAC-SHA256, an explicit salt, the
key derived by HMAC). The server enforces the expiry from the signed timestamp, whatever Max-Age the
browser was told, so a stolen cookie stops working on time. During a rotation a cookie signed with
the previous key is still good until the rotation window closes.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable

from itsdangerous import BadData, BadSignature, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode

_SALT = b"dancodes.auth.cookie"
_PAYLOAD = b"v1"  # which cookie format; the value carries no user data, there is one user


class _Signer(TimestampSigner):
    """A TimestampSigner on an injected wall clock, with its derived key computed once."""

    def __init__(self, secret: str, clock: Callable[[], float]) -> None:
        super().__init__(secret, salt=_SALT, key_derivation="hmac", digest_method=hashlib.sha256)
        self._clock = clock
        self._key = super().derive_key()  # itsdangerous would derive it again for every cookie

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is None or secret_key == self.secret_key:
            return self._key
        return super().derive_key(secret_key)

    def get_timestamp(self) -> int:
        return int(self._clock())


class Verdict(enum.Enum):
    """What a cookie value turned out to be."""

    VALID = "valid"
    VALID_PREVIOUS = "valid_previous"  # signed with AUTH_SECRET_PREVIOUS, inside the rotation window
    INVALID = "invalid"  # missing, malformed, tampered, expired, or an old key after the window

    def __bool__(self) -> bool:
        return self is not Verdict.INVALID


class CookieSigner:
    """Issues and verifies cookie values; `previous_until` is a wall-clock time (epoch seconds).

    Caddy asks about the same cookie on every request, so a verified value is remembered until its
    own expiry (or the end of the rotation window): a dict lookup instead of an HMAC.
    """

    _CACHE_SIZE = 256

    def __init__(
        self,
        secret: str,
        *,
        max_age: float,
        previous: str | None = None,
        previous_until: float = 0.0,
        clock: Callable[[], float],
    ) -> None:
        self.max_age = int(max_age)
        self._clock = clock
        self._current = _Signer(secret, clock)
        self._previous = _Signer(previous, clock) if previous else None
        self.previous_until = previous_until
        self._verified: dict[str, tuple[float, Verdict]] = {}  # value -> (good until, verdict)

    def issue(self) -> str:
        return self._current.sign(_PAYLOAD).decode("ascii")

    def verify(self, value: str | None) -> Verdict:
        if not value or len(value) > 200:  # a real value is ~60 characters
            return Verdict.INVALID
        now = self._clock()
        known = self._verified.get(value)
        if known is not None:
            if now < known[0]:
                return known[1]
            del self._verified[value]
        verdict, until = Verdict.VALID, self._good_until(self._current, value)
        if until is None and self._previous is not None and now < self.previous_until:
            verdict, until = Verdict.VALID_PREVIOUS, self._good_until(self._previous, value)
            if until is not None:
                until = min(until, self.previous_until)
        if until is None:
            return Verdict.INVALID
        if len(self._verified) >= self._CACHE_SIZE:
            self._verified.clear()  # a handful of live cookies is the normal state
        self._verified[value] = (until, verdict)
        return verdict

    def _good_until(self, signer: _Signer, value: str) -> float | None:
        """When the value stops being good, if the signer signed it and it has not expired yet."""
        if not _canonical_signature(value):
            return None
        try:
            payload, signed_at = signer.unsign(value, max_age=self.max_age, return_timestamp=True)
        except (BadSignature, ValueError):  # SignatureExpired and BadTimeSignature are BadSignatures
            return None
        if payload != _PAYLOAD:
            return None
        return signed_at.timestamp() + self.max_age


def _canonical_signature(value: str) -> bool:
    """Is the signature spelled the one way `issue` spells it?

    Base64 leaves spare bits in the last character, so a few other last characters decode to the
    same bytes and would pass the HMAC: a flipped character must not leave the cookie valid.
    """
    signature = value.rpartition(".")[2]
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except (BadData, UnicodeError):
        return False
