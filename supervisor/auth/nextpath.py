"""`next=`: where the login page sends the browser afterwards. Only a path on this site.

Anything that a browser could read as another site (`//evil.com`, `/\\evil.com`, `https://…`,
`javascript:`) or that could split a header (CR, LF) becomes "/". The checks run on the value as
given and again on each percent-decoded form, so an encoded `%2F%2F` or `%0d%0a` is caught too.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

LOGIN_PATH = "/auth/login"
_MAX_LENGTH = 2000
# printable ASCII that may stand in a path and query as it is; anything else is percent-encoded
_KEEP = "/?#[]@!$&'()*+,;=:%"


def safe_next(raw: str | None) -> str:
    """`raw` if it is a local path (encoded for a Location header), else "/"."""
    if not raw or len(raw) > _MAX_LENGTH:
        return "/"
    candidate = raw
    for _ in range(3):  # a double encoding is decoded twice
        if not _is_local(candidate):
            return "/"
        decoded = unquote(candidate)
        if decoded == candidate:
            break
        candidate = decoded
    else:
        if not _is_local(candidate):
            return "/"
    if raw.startswith("/auth/"):
        return "/"  # back to the login page, or to a logout, is never where the user was going
    return quote(raw, safe=_KEEP)


def _is_local(path: str) -> bool:
    if not path.startswith("/") or path.startswith(("//", "/\\")):
        return False
    if "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    parts = urlsplit(path)
    return not parts.scheme and not parts.netloc


def login_url(next_path: str) -> str:
    """The login page, with `next` unless it is the root."""
    target = safe_next(next_path)
    if target == "/":
        return LOGIN_PATH
    return f"{LOGIN_PATH}?next={quote(target, safe='')}"
