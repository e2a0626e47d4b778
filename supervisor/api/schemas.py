"""Request bodies and query strings of the admin API, as msgspec Structs.

quart-schema validates requests against these and generates the OpenAPI spec from them; an
unknown field is an error, so a typo in a client never passes silently. `ConfigSetRequest` and
`LogsQuery` only document what their routes parse themselves, with their own one-line errors.

Names carry their rules as patterns in the spec, for clients and the fuzzer; the routes still check
them with `supervisor.projects.names`, whose errors say which rule a name breaks.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ..auth.tokens import NAME_PATTERN as TOKEN_NAME_PATTERN
from ..opencode_install import EXACT_VERSION
from ..projects.names import (
    BRANCH_PATTERN,
    NAME_PATTERN,
    OWNER_PATTERN,
    REPO_PATTERN,
    SESSION_ID_PATTERN,
)


def _documented(pattern: str, description: str) -> Any:
    """A string whose `pattern` the spec shows and the route checks (msgspec's error would not say why)."""
    return msgspec.Meta(description=description, extra_json_schema={"pattern": pattern})


Repo = Annotated[str, _documented(REPO_PATTERN, "a GitHub repo, owner/name")]
SessionId = Annotated[str, _documented(SESSION_ID_PATTERN, "an opencode session id")]
Branch = Annotated[str, _documented(BRANCH_PATTERN, "a git branch name")]
#: the JSON Schema of the path parameters that name a repo or a worktree
OWNER = {"type": "string", "pattern": OWNER_PATTERN}
NAME = {"type": "string", "pattern": NAME_PATTERN}
SESSION_ID = {"type": "string", "pattern": SESSION_ID_PATTERN}


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CloneRequest(_Body):
    """Clone `owner/name` from the configured remote; `wait` answers when the clone is over."""

    repo: Repo
    wait: bool = False


class WorktreeRequest(_Body):
    """A worktree for one chat. `branch` defaults to `dancodes/<session_id>`."""

    repo: Repo
    session_id: SessionId
    branch: Branch | None = None


class TokenRequest(_Body):
    """A new access token's name."""

    name: Annotated[str, _documented(TOKEN_NAME_PATTERN, "an access token's name")]


Version = Annotated[str, _documented(f"^{EXACT_VERSION.pattern}$", "an exact version, like 1.18.32")]


class OpencodeUpdateRequest(_Body):
    """The opencode version to install, check and switch to; null: the npm registry's latest."""

    version: Version | None = None


class ConfigSetRequest(_Body):
    """The new value in TOML syntax: `"30"`, `"true"`, `"[\\"a\\"]"`; anything else is a string."""

    value: str


class ChatEventsQuery(_Body):
    """`follow`: after the snapshot, stream each event as it comes (`text/event-stream`)."""

    follow: bool = False


class LogsQuery(_Body):
    """`n`: how many of the last lines; `follow`: keep streaming new ones (NDJSON)."""

    n: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 100
    follow: bool = False


class GcRequest(_Body):
    """`dry_run` reports what would go; `force` also deletes worktrees holding work, backed up first."""

    dry_run: bool = False
    force: bool = False


class CommitRequest(_Body):
    """Commit everything left uncommitted; `message` defaults from the chat's title."""

    message: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None


class PushRequest(_Body):
    """Push the chat's branch to origin; `force` overwrites a branch origin has moved past."""

    force: bool = False


class PullRequestRequest(_Body):
    """Push if needed, then open (or find) the PR; title and body default from the chat."""

    title: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    body: Annotated[str, msgspec.Meta(max_length=65_536)] | None = None
    draft: bool = False
    base: Branch | None = None  # default: origin's default branch


class ForceQuery(_Body):
    force: bool = False


#: the shapes of what a browser sends (the route checks them itself, with errors that say why, and checks
#: what no pattern can: that the key is a point on the curve, that http is on loopback)
PUSH_ENDPOINT_PATTERN = r"^https?://[^/?#@\s]+(/[^#\s]*)?$"
P256DH_PATTERN = r"^[A-Za-z0-9_-]{87}=?$"  # 65 bytes: an uncompressed P-256 point
AUTH_PATTERN = r"^[A-Za-z0-9_-]{22}(==)?$"  # 16 bytes


class PushKeys(_Body):
    """`PushSubscription.toJSON().keys`: the browser's P-256 public key and its auth secret (base64url)."""

    p256dh: Annotated[str, msgspec.Meta(max_length=200), _documented(P256DH_PATTERN, "a P-256 public key")]
    auth: Annotated[str, msgspec.Meta(max_length=100), _documented(AUTH_PATTERN, "a 16-byte secret")]


class PushSubscriptionRequest(_Body):
    """The browser's `PushSubscription.toJSON()`, and optionally a name for the device (else it is made
    from the User-Agent). The endpoint must be https (http only on loopback)."""

    endpoint: Annotated[
        str, msgspec.Meta(max_length=2048), _documented(PUSH_ENDPOINT_PATTERN, "https, or http on loopback")
    ]
    keys: PushKeys
    expirationTime: float | None = None  # the browser's own name for it
    device: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class PushTestRequest(_Body):
    """A test push to the subscription `id`, or to every one."""

    id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class PresenceRequest(_Body):
    """The web app is (or no longer is) in front; `client` is a random id it makes per page."""

    client: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    visible: bool
