"""Request bodies and query strings of the admin API, as msgspec Structs.

quart-schema validates requests against these and generates the OpenAPI spec from them; an
unknown field is an error, so a typo in a client never passes silently.
"""

from __future__ import annotations

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CloneRequest(_Body):
    """Clone `owner/name` from the configured remote; `wait` answers when the clone is over."""

    repo: str
    wait: bool = False


class WorktreeRequest(_Body):
    """A worktree for one chat. `branch` defaults to `dancodes/<session_id>`."""

    repo: str
    session_id: str
    branch: str | None = None


class GcRequest(_Body):
    """`dry_run` reports what would go; `force` also deletes worktrees holding work, backed up first."""

    dry_run: bool = False
    force: bool = False


class ForceQuery(_Body):
    force: bool = False
