"""The auth wall's state and its one decision: may this request through?

`AuthWall` holds what every auth route needs (settings, secrets, the cookie signer, the sessions,
the throttle, the site's origin, the proxy secret) and answers Caddy's forward_auth check as plain
data (`Answer`), so the Quart route and the fast unix-socket responder give the same answer from
the same code. A request is signed in when one of its cookies is signed, in date and names a live
session.

A request without such a cookie may carry an access token instead (`supervisor.auth.tokens`): HTTP
Basic auth, user `opencode`, the token as the password, as `opencode attach URL -p TOKEN` sends it.
A wrong token counts against the client in the login's own throttle; a locked-out client gets 429
before its token is even looked at.

The proxy secret is made anew at every start and given to Caddy only (in its environment), which
adds it to every request it forwards to the app (`X-Dancodes-Proxy`): the app trusts Caddy's
`X-Forwarded-For` (the client as Caddy worked it out, supervisor.proxy) on those requests alone.
Anything else on loopback (the agent included) reaches the app's port directly, and is keyed by its
own address.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe
from typing import TYPE_CHECKING

import structlog

from .cookie import CookieSigner, Verdict
from .keys import AuthSecrets
from .nextpath import login_url
from .origin import (
    SAFE_METHODS,
    HeaderMap,
    configured_origin,
    csrf_refusal,
    is_navigation,
    request_origin,
)
from .rotation import rotation_started
from .sessions import SessionStore
from .throttle import Throttle, client_key
from .tokens import TokenStore, basic_password

if TYPE_CHECKING:
    from ..config import AuthSettings, LoadedConfig

log = structlog.get_logger("dancodes.auth")

DAY = 86400.0
_NO_STORE = ("cache-control", "no-store")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as data: status, headers (lowercase names), body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        body = json.dumps({"error": message}).encode()
        return cls(status, (("content-type", "application/json"), _NO_STORE), body)


ALLOW = Answer(204, (_NO_STORE,))
NOT_SIGNED_IN = "not signed in: log in at /auth/login"
#: The header Caddy adds to every request it forwards to the app; its value is `AuthWall.proxy_secret`.
PROXY_HEADER = "x-dancodes-proxy"
#: The variable that gives Caddy the proxy secret (conf/Caddyfile reads it).
PROXY_SECRET_ENV = "DANCODES_PROXY_SECRET"  # noqa: S105  # a variable's name, not its value


class AuthWall:
    """Everything the wall knows; built once at start by `from_config`, read by every auth route."""

    def __init__(
        self,
        settings: AuthSettings,
        secrets: AuthSecrets,
        *,
        data_dir: Path,
        origin: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`origin`: the site's normalized origin, None to take it from each request's headers.

        `clock` is wall time (cookie ages, the rotation window survive restarts); `monotonic` drives
        the throttle.
        """
        self.settings = settings
        self.secrets = secrets
        #: when a request last came through the wall (monotonic; set by supervisor.auth.forward)
        self.last_request = 0.0
        self.origin = origin
        self.cookie_name = settings.cookie_name
        self.max_age = int(settings.max_age_days * DAY)
        previous_until = 0.0
        if secrets.previous is not None:
            started = rotation_started(data_dir, secrets.previous, secrets.secret, clock())
            previous_until = started + settings.rotation_window_days * DAY
        self.signer = CookieSigner(
            secrets.secret,
            max_age=self.max_age,
            previous=secrets.previous,
            previous_until=previous_until,
            clock=clock,
        )
        self.sessions = SessionStore(data_dir, max_age=self.max_age, clock=clock)
        self.tokens = TokenStore(data_dir, clock=clock)
        self.proxy_secret = token_urlsafe(32)
        self.throttle = Throttle(
            free_attempts=settings.free_attempts,
            lockout_initial=settings.lockout_initial,
            lockout_max=settings.lockout_max,
            clock=monotonic,
        )

    @classmethod
    def from_config(
        cls,
        loaded: LoadedConfig,
        environ: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> AuthWall:
        """Raise MissingSecret (a secret unset or short) or ConfigError (a bad public origin)."""
        env = os.environ if environ is None else environ
        return cls(
            loaded.config.auth,
            AuthSecrets.from_env(env),
            data_dir=loaded.paths.data_dir,
            origin=configured_origin(loaded.config.app.public_origin, env),
            clock=clock,
            monotonic=monotonic,
        )

    # -- the cookie ---------------------------------------------------------------------------------

    def verify(self, headers: HeaderMap) -> Verdict:
        """The best verdict among the request's cookies of our name that name a live session."""
        return self._signed_in(headers)[0]

    def session_of(self, headers: HeaderMap) -> str | None:
        """The live session the request's cookie names, if any."""
        verdict, session_id = self._signed_in(headers)
        return session_id if verdict else None

    def _signed_in(self, headers: HeaderMap) -> tuple[Verdict, str]:
        header = headers.get("cookie")
        if not header or self.cookie_name not in header:
            return Verdict.INVALID, ""
        best: tuple[Verdict, str] = (Verdict.INVALID, "")
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == self.cookie_name:
                verdict, session_id = self.signer.open(value.strip().strip('"'))
                if not verdict or not self.sessions.alive(session_id):
                    continue
                if verdict is Verdict.VALID:
                    return verdict, session_id
                best = (verdict, session_id)
        return best

    def issue(self, user_agent: str = "") -> str:
        """A cookie value for a new session (recorded first; DataDirError if it cannot be)."""
        return self.signer.issue(self.sessions.create(user_agent))

    def end_session(self, headers: HeaderMap) -> bool:
        """Log out: end the session the request's cookie names. DataDirError if the file cannot be written."""
        session_id = self.session_of(headers)
        return session_id is not None and self.sessions.end(session_id)

    def secure(self, headers: HeaderMap) -> bool:
        """Mark the cookie Secure when the site is served over https."""
        origin = self.allowed_origin(headers)
        return origin is not None and origin.startswith("https://")

    # -- where requests come from -------------------------------------------------------------------

    def from_proxy(self, headers: HeaderMap) -> bool:
        """Did Caddy forward this request? Only then are its X-Forwarded-* headers Caddy's own."""
        given = headers.get(PROXY_HEADER)
        if given is None:
            return False
        # constant time: how much of a guess was right must not show in the response time
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.proxy_secret.encode())

    def allowed_origin(self, headers: HeaderMap) -> str | None:
        return self.origin or request_origin(headers)

    def csrf_refusal(self, method: str, headers: HeaderMap) -> str | None:
        if method.upper() in SAFE_METHODS:
            return None  # before working out the origin: most checks are GETs
        return csrf_refusal(method, headers, self.allowed_origin(headers))

    # -- Caddy's forward_auth -----------------------------------------------------------------------

    def check(self, headers: HeaderMap, client: str | None = None) -> Answer:
        """The answer to forward_auth: 204 to let the request through, else what the client gets.

        `client`: the throttle's key for the asker (None: Caddy's `X-Forwarded-For`, as forward_auth
        sends it).
        """
        method = headers.get("x-forwarded-method", "GET")
        if not self.verify(headers):
            token = basic_password(headers.get("authorization"))
            if token is not None:
                return self._check_token(method, headers, token, client)
            if is_navigation(method, headers):
                location = login_url(headers.get("x-forwarded-uri", "/"))
                return Answer(302, (("location", location), _NO_STORE))
            return Answer.error(401, NOT_SIGNED_IN)
        return self._cross_site(method, headers) or ALLOW

    def _cross_site(self, method: str, headers: HeaderMap) -> Answer | None:
        """The 403 for another site's state-changing request, else None."""
        refusal = self.csrf_refusal(method, headers)
        if refusal is None:
            return None
        log.warning("csrf_refused", method=method, reason=refusal)
        return Answer.error(403, f"cross-site request refused: {refusal}")

    def _check_token(self, method: str, headers: HeaderMap, token: str, client: str | None) -> Answer:
        who = client_key(headers.get("x-forwarded-for")) if client is None else client
        wait = self.throttle.retry_after(who)
        if wait > 0:  # locked out: the token is not even looked at
            seconds = math.ceil(wait)
            log.debug("token_throttled", client=who, retry_after=seconds)
            answer = Answer.error(429, f"too many wrong tokens: try again in {seconds} s")
            return Answer(429, (*answer.headers, ("retry-after", str(seconds))), answer.body)
        name = self.tokens.match(token)
        if name is None:
            failure = self.throttle.failed(who)
            log.warning("token_refused", client=who, failures=failure.failures)
            if failure.lockout > 0:
                log.warning("token_locked_out", client=who, seconds=failure.lockout)
            return Answer.error(401, "wrong or revoked token")
        self.throttle.succeeded(who)
        # a browser never sends Basic auth here unasked (the wall sends no challenge), but if one
        # does, its cross-site requests are refused as with the cookie; a script sends neither header
        if "origin" in headers or "sec-fetch-site" in headers:
            return self._cross_site(method, headers) or ALLOW
        return ALLOW
