"""Access tokens: how a laptop's opencode gets through the wall without a browser's cookie.

`dancodes-ctl token create NAME` makes a token (256 random bits) and shows it once; the client sends
it as HTTP Basic auth, user `opencode` (what `opencode attach URL -p TOKEN` and `opencode run
--attach URL -p TOKEN` send), and the wall lets the request through to opencode. Only the SHA-256 of
each token is kept, in `<data_dir>/auth-tokens.json` (mode 0600, written whole): a copy of the file
opens nothing. A revoked token is gone from memory before the file is written, so its next request
is refused. The last-used time is kept in memory and written at most every `flush_every` seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from ..errors import Conflict, DataDirError, InvalidName, NotFound
from ..files import read_state, write_whole

log = structlog.get_logger("dancodes.auth")

TOKENS_FILE = "auth-tokens.json"
#: The Basic auth user name opencode's client sends (its OPENCODE_SERVER_USERNAME default).
BASIC_USER = "opencode"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: a token name's rule as the OpenAPI spec shows it (a JSON Schema pattern matches anywhere unless anchored)
NAME_PATTERN = f"^{_NAME.pattern}$"
_MAX_TOKENS = 100
_PASSWORD_MAX = 256  # a token is 43 characters; anything far longer is not one of ours


class TokenRecord(msgspec.Struct):
    """What is kept of one token: the SHA-256 (hex) of its value, and times in epoch seconds."""

    hash: str
    created: float
    last_used: float | None = None


class _TokensFile(msgspec.Struct):
    tokens: dict[str, TokenRecord]  # name -> record


class TokenInfo(msgspec.Struct, frozen=True):
    """One token as listings show it: never its value."""

    name: str
    created: float
    last_used: float | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def basic_password(authorization: str | None, user: str = BASIC_USER) -> str | None:
    """The password of an `Authorization: Basic` header for `user`; None for anything else."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or len(encoded) > 4 * _PASSWORD_MAX:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, sep, password = decoded.partition(":")
    if not sep or name != user or not password or len(password) > _PASSWORD_MAX:
        return None
    return password


def check_name(name: str) -> str:
    """`name` if it is a good token name, else InvalidName saying what one is."""
    if _NAME.fullmatch(name) is None:
        raise InvalidName(
            f"bad token name '{name[:40]}': 1 to 64 letters, digits, '.', '_' or '-', a letter or digit first"
        )
    return name


class TokenStore:
    """The tokens, in memory and in the data dir's file; only the daemon reads and writes it."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float], flush_every: float = 300.0) -> None:
        self.path = data_dir / TOKENS_FILE
        self.flush_every = flush_every
        self._clock = clock
        self._tokens = self._load()
        self._flushed_at = clock()
        self._dirty = False

    def __len__(self) -> int:
        return len(self._tokens)

    def match(self, token: str) -> str | None:
        """The name of the token `token` is, noting it was used now; None when it is none of them."""
        given = token_hash(token).encode()
        found: str | None = None
        for name, record in self._tokens.items():
            # every record compared, each in constant time: the answer's timing tells nothing
            if hmac.compare_digest(given, record.hash.encode()):
                found = name
        if found is not None:
            now = self._clock()
            self._tokens[found].last_used = now
            self._dirty = True
            if now - self._flushed_at >= self.flush_every:
                self.flush()
        return found

    def create(self, name: str) -> str:
        """A new token's value, recorded on disk before it is returned.

        InvalidName, Conflict (the name is taken), DataDirError (the file cannot be written).
        """
        check_name(name)
        if name in self._tokens:
            raise Conflict(f"a token named '{name}' exists (revoke it first, or pick another name)")
        if len(self._tokens) >= _MAX_TOKENS:
            raise Conflict(f"there are {_MAX_TOKENS} tokens already: revoke one first")
        token = secrets.token_urlsafe(32)
        self._tokens[name] = TokenRecord(hash=token_hash(token), created=self._clock())
        try:
            self._save()
        except DataDirError:
            del self._tokens[name]  # a token the file does not hold would not survive a restart
            raise
        return token

    def revoke(self, name: str) -> None:
        """Refuse the token from now on; NotFound when there is none of that name.

        DataDirError when the file cannot be written: in memory it is revoked already.
        """
        if self._tokens.pop(name, None) is None:
            raise NotFound(f"no token named '{name[:64]}' (dancodes-ctl token list shows them)")
        self._save()

    def listing(self) -> list[TokenInfo]:
        """Every token, the oldest first."""
        return [
            TokenInfo(name=name, created=r.created, last_used=r.last_used)
            for name, r in sorted(self._tokens.items(), key=lambda kv: kv[1].created)
        ]

    def flush(self) -> None:
        """Write last-used times now; a failure is logged (the tokens themselves are on disk)."""
        if not self._dirty:
            return
        try:
            self._save()
        except DataDirError as exc:
            self._flushed_at = self._clock()  # retried after flush_every, not on every request
            log.warning("tokens_not_saved", error=str(exc))

    def _load(self) -> dict[str, TokenRecord]:
        # unreadable: no token works, which is safe, and creating one writes a good file again
        kept = read_state(self.path, _TokensFile, "tokens_unreadable")
        return kept.tokens if kept is not None else {}

    def _save(self) -> None:
        text = msgspec.json.encode(_TokensFile(tokens=self._tokens)).decode()
        write_whole(self.path, text + "\n")
        self._flushed_at = self._clock()
        self._dirty = False
