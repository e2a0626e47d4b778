"""The wall's secrets from the environment: the login password and the cookie-signing keys.

`AuthSecrets.from_env` refuses to start the wall without them. AUTH_SECRET (and, during a rotation,
AUTH_SECRET_PREVIOUS) must be at least 32 characters: a short key could be guessed offline from
one captured cookie.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import MissingSecret

MIN_SECRET_LENGTH = 32
_HOW = (
    f"set it to a random string of at least {MIN_SECRET_LENGTH} characters "
    '(python -c "import secrets; print(secrets.token_urlsafe(32))")'
)


@dataclass(frozen=True)
class AuthSecrets:
    """The password and signing keys; `repr` never shows them."""

    password: str = field(repr=False)
    secret: str = field(repr=False)
    previous: str | None = field(default=None, repr=False)  # still verifies during a rotation

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthSecrets:
        """Read AUTH_PASSWORD, AUTH_SECRET and AUTH_SECRET_PREVIOUS; raise MissingSecret if unusable."""
        password = environ.get("AUTH_PASSWORD", "")
        if not password:
            raise MissingSecret(
                "AUTH_PASSWORD is not set: set it to the password the login page asks for",
                key="AUTH_PASSWORD",
            )
        secret = _signing_key(environ, "AUTH_SECRET")
        if secret is None:
            raise MissingSecret(f"AUTH_SECRET is not set: {_HOW}", key="AUTH_SECRET")
        previous = _signing_key(environ, "AUTH_SECRET_PREVIOUS")
        if previous == secret:
            previous = None  # a rotation to the same key is no rotation
        return cls(password=password, secret=secret, previous=previous)

    def password_matches(self, given: str) -> bool:
        """Constant-time comparison, so response times do not leak how much of a guess was right."""
        # surrogatepass: a malformed form field is a wrong password, not a crash
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.password.encode("utf-8"))


def _signing_key(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "")
    if not value:
        return None
    if len(value) < MIN_SECRET_LENGTH:
        raise MissingSecret(f"{name} is too short ({len(value)} characters): {_HOW}", key=name)
    return value
