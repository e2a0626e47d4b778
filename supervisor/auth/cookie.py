"""The session cookie's value: signed with itsdangerous, dated, and checked against the clock.

A cookie is `<session id>.<timestamp>.<signature>` from `TimestampSigner` (HMAC-SHA256, an explicit
salt, the key derived by HMAC); the session id names a server-side session (`sessions`), which the
wall checks after the signature. The server enforces the expiry from the signed timestamp, whatever
Max-Age the browser was told, so a stolen cookie stops working on time. During a rotation a cookie
signed with the previous key is still good until the rotation window closes.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable

from itsdangerous import BadData, BadSignature, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode

from .sessions import is_session_id

_SALT = b"dancodes.auth.cookie"


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

    _NOTHING = (Verdict.INVALID, "")

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
        # value -> (good until, verdict, session id)
        self._verified: dict[str, tuple[float, Verdict, str]] = {}

    def issue(self, session_id: str) -> str:
        if not is_session_id(session_id):
            raise ValueError("not a session id")  # a bug: ids come from sessions.new_session_id
        return self._current.sign(session_id).decode("ascii")

    def verify(self, value: str | None) -> Verdict:
        return self.open(value)[0]

    def open(self, value: str | None) -> tuple[Verdict, str]:
        """The verdict on the value's signature and date, and the session id it carries ("" if invalid)."""
        if not value or len(value) > 200:  # a real value is ~85 characters
            return self._NOTHING
        now = self._clock()
        known = self._verified.get(value)
        if known is not None:
            if now < known[0]:
                return known[1], known[2]
            del self._verified[value]
        verdict, good = Verdict.VALID, self._good_until(self._current, value)
        if good is None and self._previous is not None and now < self.previous_until:
            verdict, good = Verdict.VALID_PREVIOUS, self._good_until(self._previous, value)
            if good is not None:
                good = (min(good[0], self.previous_until), good[1])
        if good is None:
            return self._NOTHING
        if len(self._verified) >= self._CACHE_SIZE:
            self._verified.clear()  # a handful of live cookies is the normal state
        until, session_id = good
        self._verified[value] = (until, verdict, session_id)
        return verdict, session_id

    def _good_until(self, signer: _Signer, value: str) -> tuple[float, str] | None:
        """When the value stops being good and its session id, if the signer signed it and it is in date."""
        if not _canonical_signature(value):
            return None
        try:
            payload, signed_at = signer.unsign(value, max_age=self.max_age, return_timestamp=True)
        except (BadSignature, ValueError):  # SignatureExpired and BadTimeSignature are BadSignatures
            return None
        session_id = payload.decode("ascii", "replace")
        if not is_session_id(session_id):  # a v1 cookie (payload "v1", from before sessions) among others
            return None
        return signed_at.timestamp() + self.max_age, session_id


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
