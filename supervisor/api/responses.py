"""The JSON answers of the admin API, as msgspec Structs: the success body of each route, and the
one-line `{"error": "…"}` of every refusal.

Each route declares its answers with quart-schema (`validate_response` for what it returns,
`can_fail` for the errors it can give), so `/admin/openapi.json` shows the real shapes: the web
app's types are generated from it and the fuzz test checks every answer against it. A route returns
plain data (the `as_json()` of the domain objects) and quart-schema converts it into its Struct
before it is encoded, so a key that is missing, extra or of the wrong type is a loud 500 in the
tests, never a silent change of the API. The field names are the API: renaming one breaks clients.

`UNSET` fields are left out of the JSON when not set (the answer then has fewer keys, as documented).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType
from quart_schema import document_response

from ..chats import ChatStatus
from ..config import Config
from ..logs import Stream
from ..projects.progress import Phase
from ..reaper import Mode

F = TypeVar("F", bound=Callable[..., Any])

#: The states of `supervisor.service.State` (a test keeps the two equal).
ServiceStateName = Literal[
    "stopped", "starting", "running", "unhealthy", "backoff", "stopping", "exited", "fatal"
]

Seconds = Annotated[float, msgspec.Meta(description="seconds")]
EpochSeconds = Annotated[float, msgspec.Meta(description="wall-clock seconds since the epoch")]
Bytes = Annotated[int, msgspec.Meta(ge=0, description="bytes")]


class _Answer(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ApiError(_Answer):
    """A refusal: one printable line naming what is wrong."""

    error: str


def can_fail(*statuses: int) -> Callable[[F], F]:
    """Document the one-line `ApiError` body for each of `statuses` (401: not signed in, 403: another
    site's page or a refused kill, 413: body too large, 507: the disk is full, the rest as each route
    says)."""

    def decorate(func: F) -> F:
        for status in statuses:
            func = document_response(ApiError, status)(func)
        return func

    return decorate


def checked(data: Any, answer: type[msgspec.Struct]) -> dict[str, Any]:
    """`data` through the Struct `answer`, for a route quart-schema cannot check (it may stream)."""
    body: dict[str, Any] = msgspec.to_builtins(msgspec.convert(data, answer))
    return body


# -- the daemon and its services ---------------------------------------------------------------


class Volume(_Answer):
    """The filesystem holding the data_dir."""

    total: Bytes
    used: Bytes
    free: Bytes


class DaemonInfo(_Answer):
    pid: int
    mode: Mode | None  # how it reaps: as PID 1 or as a child subreaper; None before it started
    version: str
    uptime: Seconds
    stopping: bool
    orphans_reaped: int


class ExitInfo(_Answer):
    """How the last run of a service ended."""

    code: int | None  # None: killed by a signal
    signal: str | None  # e.g. SIGKILL
    description: str
    at: EpochSeconds | None


class ServiceInfo(_Answer):
    """One supervised service."""

    name: str
    state: ServiceStateName
    pid: int | None
    uptime: Seconds | None
    restarts: int
    healthy: bool | None  # None: not probed yet, or not running
    reason: str | None  # why it is not running as it should
    policy: Literal["always", "on-failure", "never"]
    run: str | None  # id of the current run, in the env of everything it starts
    last_exit: ExitInfo | None
    # the memory ceiling (supervisor.memory): the process tree's RSS as last measured (None: not running),
    # the limits (None: none), the restarts the ceiling made, and what it has to say (None: all is well)
    memory_mb: float | None
    memory_limit_mb: float | None
    memory_hard_limit_mb: float | None
    memory_restarts: int
    memory_note: str | None
    memory_checked_at: EpochSeconds | None  # when it was last measured


class Health(_Answer):
    """The daemon's health: 200 when every required service is healthy, else 503.

    `daemon`, `services` and `disk` may be left out for a caller who is not signed in."""

    status: Literal["ok", "degraded"]
    daemon: DaemonInfo | UnsetType = UNSET
    services: dict[str, ServiceInfo] | UnsetType = UNSET
    disk: Volume | UnsetType = UNSET


class ServiceList(_Answer):
    services: list[ServiceInfo]


class ServiceControlResult(_Answer):
    """The service once the start or stop has played out."""

    service: ServiceInfo


class LogEntry(_Answer):
    """One line a service wrote."""

    t: EpochSeconds
    stream: Stream
    line: str


class ServiceLogs(_Answer):
    service: str
    lines: list[LogEntry]


# -- config -------------------------------------------------------------------------------------


class ConfigView(_Answer):
    """The effective config, and the files it was layered from (lowest first)."""

    config: Config
    layers: list[str]


class ConfigEntry(_Answer):
    """The effective value of one dotted key."""

    key: str
    value: Any


class ConfigChange(_Answer):
    """A key set (`value` is its new effective value) or reset (`value` is null)."""

    key: str
    value: Any
    restart_needed: bool  # ports, app and auth are read at start only


# -- processes ----------------------------------------------------------------------------------


class OrphanInfo(_Answer):
    """A live process reparented to the daemon that it did not start."""

    pid: int
    cmdline: list[str]
    age: Seconds
    cpu: Annotated[float, msgspec.Meta(description="CPU seconds, user + system")]
    rss: Bytes
    service: str | None  # the service it most likely came from
    service_run: str | None


class ProcessList(_Answer):
    orphans: list[OrphanInfo]
    reaped: int  # orphans reaped since the daemon started


class Killed(_Answer):
    """The pids signalled: the process and its descendants."""

    killed: list[int]


# -- repos and worktrees ------------------------------------------------------------------------


class RepoInfo(_Answer):
    """A clone."""

    repo: str  # owner/name
    owner: str
    name: str
    path: str
    default_branch: str | None
    head: str | None  # short sha; None in an empty repo
    worktrees: int
    last_fetch: EpochSeconds | None


class CloneStatus(_Answer):
    """A clone running, or recently finished or failed."""

    repo: str
    phase: Phase
    received_objects: int
    total_objects: int
    indexed_deltas: int
    total_deltas: int
    received_bytes: Bytes
    started: EpochSeconds
    finished: EpochSeconds | None
    error: str | None
    cancelled: bool


class RepoList(_Answer):
    repos: list[RepoInfo]
    clones: list[CloneStatus]


class RepoStatus(_Answer):
    """The repo once cloned (`repo`), and its clone while one runs or when it just ran (`clone`)."""

    repo: RepoInfo | None
    clone: CloneStatus | None


class CloneFailed(_Answer):
    """A clone that failed (with `clone`), or git that failed before a clone began."""

    error: str
    clone: CloneStatus | UnsetType = UNSET


class DeletedWorktree(_Answer):
    path: str
    backup_ref: str | None  # the ref in the clone that keeps its files and history; None: nothing was at risk
    backup_refs: list[
        str
    ]  # every ref the backup made: backup_ref, and those of its submodules and nested repos
    branch_deleted: str | None


class RepoDeleted(_Answer):
    """A repo deleted (`path`, `worktrees`, `backup`), or a running clone cancelled (`cancelled_clone`)."""

    deleted: str  # owner/name
    cancelled_clone: bool | UnsetType = UNSET
    path: str | UnsetType = UNSET
    worktrees: list[DeletedWorktree] | UnsetType = UNSET
    backup: str | UnsetType | None = UNSET  # a bare repo with every ref that was at risk


class GitHubRepoInfo(_Answer):
    full_name: str
    owner: str
    name: str
    private: bool
    description: str | None
    default_branch: str
    pushed_at: str | None  # ISO 8601
    cloned: bool  # a clone of it is here


class GitHubRepoList(_Answer):
    """The user's GitHub repos, newest push first."""

    repos: list[GitHubRepoInfo]


class WorktreeInfo(_Answer):
    """One chat's worktree."""

    repo: str
    session_id: str
    path: str
    branch: str | None  # None: detached HEAD
    head: str | None
    dirty: bool  # uncommitted changes, untracked files included
    changed_files: int
    unpushed: int  # commits on no remote
    size: Bytes | None  # None: not measured (the answer to a create: a new checkout of HEAD)
    last_activity: EpochSeconds
    ignored: list[str]  # ignored files and directories that are not regenerable caches
    nested: list[str]  # untracked directories holding a repository of their own
    submodules: list[str]  # submodules holding work on no remote
    at_risk: list[str]  # what deleting it would lose, one phrase each; empty: nothing


class WorktreeCreated(_Answer):
    worktree: WorktreeInfo
    session_moved: bool  # opencode knew the chat and now runs it in the worktree


class WorktreeList(_Answer):
    worktrees: list[WorktreeInfo]


class WorktreeDetail(_Answer):
    worktree: WorktreeInfo


class FileChange(_Answer):
    path: str
    old_path: str | None  # the path before a rename
    status: Literal["added", "deleted", "modified", "renamed", "copied", "typechange"]
    additions: int
    deletions: int
    binary: bool


class CommitLine(_Answer):
    id: str
    subject: str


class WorktreeDiff(_Answer):
    """The chat's whole change against the merge-base with origin's default branch: its commits,
    uncommitted and untracked files. `patch` is capped (`truncated`); `files` lists every file."""

    branch: str | None
    base: str | None
    base_branch: str | None
    commits: list[CommitLine]  # since the base, newest first (at most 250)
    files: list[FileChange]
    additions: int
    deletions: int
    patch: str
    truncated: bool


class Committed(_Answer):
    commit: str  # the new commit, abbreviated
    branch: str | None
    files: int  # how many paths it changed


class Pushed(_Answer):
    branch: str
    commit: str  # the branch's tip, now on origin
    forced: bool


class PullRequestOpened(_Answer):
    url: str
    number: int
    created: bool  # false: the branch's open PR was there already


class WorktreeDeleted(_Answer):
    deleted: DeletedWorktree


WaitingOn = Literal["permission", "question"]


class RetryInfo(_Answer):
    """A provider call failed and will be tried again."""

    attempt: int
    message: str
    next: EpochSeconds | None


class ChatInfo(_Answer):
    """A chat: its worktree, its opencode session and what it is doing."""

    repo: str
    session_id: str
    path: str
    title: str | None  # None: opencode could not be asked, or no longer has the session
    created: EpochSeconds | None
    found: bool | None  # opencode still has the session; None: opencode could not be asked
    status: ChatStatus
    error: str | None  # why the latest turn failed (status "error")
    retry: RetryInfo | None  # status "retry": the provider's failure and the next try
    waiting: WaitingOn | None  # status "waiting": what the agent asks of the user
    interrupted: str | None  # status "interrupted": why its turn was cut
    since: EpochSeconds  # when the status last changed (0: not since the daemon started)
    updated: EpochSeconds


class ChatList(_Answer):
    """Chats newest first."""

    chats: list[ChatInfo]
    opencode: bool  # opencode answered: titles and `found` are known
    following: bool  # the daemon follows opencode's events: statuses are current


class ChatState(_Answer):
    """A chat's status as the daemon derives it (the app never derives one itself)."""

    sessionID: str  # opencode's spelling, as in the events beside it
    directory: str
    status: ChatStatus
    error: str | None
    retry: RetryInfo | None
    waiting: WaitingOn | None
    interrupted: str | None  # status "interrupted": why its turn was cut (opencode went away mid-turn)
    since: EpochSeconds
    updated: EpochSeconds


class LivePart(_Answer):
    """The text so far of a part of a running turn (opencode stores it only once the part is done)."""

    sessionID: str
    messageID: str
    partID: str
    field: str
    text: str
    truncated: bool  # it passed the daemon's bound: only its start is kept


class ChatSnapshotData(_Answer):
    following: bool  # the daemon follows opencode's events: what follows is current
    chats: list[ChatState]
    live: list[LivePart]


class ChatSnapshot(_Answer):
    """Every chat's status and every running turn's text so far: what the app starts from, and resyncs
    to after any reconnect."""

    type: Literal["snapshot"]
    properties: ChatSnapshotData


class ChatEvent(_Answer):
    """One event of the app's stream after its snapshot: `chat.status` (a `ChatState`), or one of
    opencode's message, part, session, permission and question events, relayed as opencode sent it."""

    type: str
    properties: dict[str, Any]
    directory: str | None = None


class LastEvent(_Answer):
    """The last event opencode sent about a session."""

    type: str  # opencode's event type, e.g. session.status
    at: EpochSeconds


class InstanceInfo(_Answer):
    """An opencode instance (one per directory) as opencode's events show it: `loaded` once an event came
    from its directory, `disposed` after its dispose, `unknown` when nothing was heard of it since the
    daemon last connected to opencode's events (opencode boots an instance without a word of its own)."""

    directory: str
    state: Literal["loaded", "disposed", "unknown"]
    last_event: EpochSeconds | None
    disposed_at: EpochSeconds | None


class InstanceList(_Answer):
    """Every directory whose instance opencode's events mentioned since the daemon started, newest last."""

    instances: list[InstanceInfo]
    following: bool  # the daemon follows opencode's events now
    connected_at: EpochSeconds | None  # when it last connected to them


class ServiceChange(_Answer):
    """A change of a service's state or reason: a start, a failed probe, a recovery, an exit."""

    at: EpochSeconds
    state: ServiceStateName
    reason: str | None
    pid: int | None


class ChatDiagnosis(_Answer):
    """What the daemon knows of one chat: its status as `GET /admin/chats` gives it, the last event about
    it, its worktree's opencode instance, and opencode the service (with its recent changes)."""

    session_id: str
    repo: str
    path: str  # the worktree
    chat: ChatState
    last_event: LastEvent | None  # None: no event about it since the daemon started
    following: bool  # the daemon follows opencode's events: the status is current
    instance: InstanceInfo
    opencode: ServiceInfo | None  # None: no service named opencode in the config
    opencode_changes: list[ServiceChange]  # oldest first
    now: EpochSeconds  # the daemon's clock, to read the times above against


class RepoUsage(_Answer):
    repo: str
    size: Bytes


class WorktreeUsage(_Answer):
    repo: str
    session_id: str
    size: Bytes


class DiskReport(_Answer):
    """The volume, and the bytes each repo, worktree and the backups take."""

    volume: Volume
    repos: list[RepoUsage]
    worktrees: list[WorktreeUsage]
    repos_total: Bytes
    worktrees_total: Bytes
    backups_total: Bytes
    total: Bytes


class GcDecision(_Answer):
    repo: str
    session_id: str
    path: str
    action: Literal["delete", "keep"]
    reason: str
    backup: bool  # its work on no remote is backed up before it goes


class GcReport(_Answer):
    """What GC decided for each worktree, what it deleted (`owner/name/session_id`), the backups it made
    and what failed."""

    dry_run: bool
    force: bool
    decisions: list[GcDecision]
    deleted: list[str]
    backups: dict[str, str]  # a deleted worktree -> its backup ref in the clone
    errors: dict[str, str]


# -- who is signed in (supervisor.api.sessions) ------------------------------------------------


class SessionOut(_Answer):
    """One signed-in browser: times are epoch seconds; `current` is the caller's own session."""

    id: str
    created: float
    last_seen: float
    user_agent: str
    current: bool


class SessionList(_Answer):
    sessions: list[SessionOut]


class SessionsEnded(_Answer):
    """How many sessions ended; each of their cookies gets 401 (or the login page) from now on."""

    ended: int


# -- access tokens (supervisor.api.tokens) ------------------------------------------------------


class TokenOut(_Answer):
    """One access token, never its value: `last_used` is null until it first gets through the wall."""

    name: str
    created: EpochSeconds
    last_used: EpochSeconds | None


class TokenList(_Answer):
    tokens: list[TokenOut]


class TokenCreated(_Answer):
    """The new token's value: shown this once, kept only as a hash."""

    name: str
    token: str


class TokenRevoked(_Answer):
    """The token is refused from its next request on."""

    name: str


# -- web push (supervisor.api.push) -------------------------------------------------------------


class PushKey(_Answer):
    """The VAPID public key: `applicationServerKey` for `pushManager.subscribe` (base64url, P-256)."""

    public_key: str


class PushDelivery(_Answer):
    """How the last push to a subscription went: the push service's HTTP status (null: no answer)."""

    at: EpochSeconds
    status: int | None
    ok: bool
    message: str


class PushSubscriptionInfo(_Answer):
    """A browser subscribed to pushes; its keys are never shown. `id` is the start of the SHA-256 (hex)
    of its endpoint, so a browser can tell its own entry."""

    id: str
    device: str
    push_service: str  # the endpoint's origin
    created: EpochSeconds
    last_delivery: PushDelivery | None


class PushSubscriptionList(_Answer):
    """Every subscription; `suppressed`: an app is visible now, so a chat's news is not pushed."""

    subscriptions: list[PushSubscriptionInfo]
    suppressed: bool
    max_subscriptions: int


class PushSubscribed(_Answer):
    """The subscription as kept; `created` is false when it replaced the same endpoint's."""

    subscription: PushSubscriptionInfo
    created: bool


class PushUnsubscribed(_Answer):
    deleted: str


class PushResult(_Answer):
    """What one push service said: its HTTP status (null: none) and one line; `dropped` when it said the
    subscription is gone (404/410) and it was forgotten."""

    id: str
    device: str
    status: int | None
    ok: bool
    dropped: bool
    message: str


class PushResults(_Answer):
    results: list[PushResult]


class PushPresence(_Answer):
    """`suppressed`: an app is visible now (this one or another), so a chat's news is not pushed."""

    suppressed: bool


# -- opencode's versions -------------------------------------------------------------------------


class OpencodeInstalled(_Answer):
    """One opencode version on disk, installed whole."""

    version: str
    path: str  # its npm prefix: <data_dir>/opencode-versions/<version>, or the checkout's own


class OpencodeVersions(_Answer):
    """Which opencode runs, the one a rollback goes back to, the install's pin and what is on disk."""

    current: str | None  # None: no service runs opencode
    previous: str | None  # None: nothing to roll back to
    pinned: str  # the version this install pins (package-lock.json)
    installed: list[OpencodeInstalled]
    changing: bool  # an update or rollback is running
