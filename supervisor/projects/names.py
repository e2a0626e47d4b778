"""Names that become paths, URLs and refs: GitHub owner/name, opencode session ids, branch names.

Everything a request names is checked here before it reaches the disk or git, with `re.fullmatch`
and an explicit allow-list, so `..`, `-rf`, `%2e%2e`, NUL or a newline never get further. The
on-disk slugs join parts with `__`; the rules make that reversible: GitHub owners cannot contain
`_`, so a repo slug splits on its first `__`, and session ids may neither contain `__` nor start
with `_`, so a worktree slug splits on its last `__`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidName

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
_NAME = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,99}")
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# git check-ref-format: no control characters, space, ~ ^ : ? * [ \ anywhere
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
BRANCH_MAX = 200
SEPARATOR = "__"

# The same rules as JSON Schema patterns (ECMA-262, anchored), so the API's spec tells a client what
# it may send; a test holds each to its validator. The validators stay the check: they say what is wrong.
OWNER_PATTERN = f"^{_OWNER.pattern}$"
_NAME_RULES = rf"(?!\.\.?$)(?!.*\.[Gg][Ii][Tt]$){_NAME.pattern}"  # not `.` nor `..`, no `.git` at the end
NAME_PATTERN = f"^{_NAME_RULES}$"
REPO_PATTERN = f"^{_OWNER.pattern}/{_NAME_RULES}$"
SESSION_ID_PATTERN = f"^(?!.*{SEPARATOR}){_SESSION_ID.pattern}$"
BRANCH_PATTERN = (
    r"^(?!-)(?!\.)(?!/)(?!.*/$)(?!.*//)(?!.*/\.)(?!.*\.\.)(?!.*@\{)(?!@$)(?!HEAD$)(?!.*\.$)"
    r"(?!.*\.lock(?:/|$))"
    rf"[^\x00-\x20\x7f~^:?*\[\\]{{1,{BRANCH_MAX}}}$"
)


def show(value: str, limit: int = 60) -> str:
    """A bad input as it may appear in a one-line message: quoted, escaped, cut to `limit` characters."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


@dataclass(frozen=True, order=True)
class RepoName:
    """A GitHub repository, `owner/name`, validated on construction."""

    owner: str
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.owner, str) or not _OWNER.fullmatch(self.owner):
            raise InvalidName(
                f"owner {show(str(self.owner))} is not a GitHub owner name "
                "(letters, digits and '-', 1-39 characters, not starting with '-')"
            )
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name) or self.name in (".", ".."):
            raise InvalidName(
                f"repo name {show(str(self.name))} is not a GitHub repo name "
                "(letters, digits, '.', '_' and '-', 1-100 characters, not starting with '-')"
            )
        if self.name.lower().endswith(".git"):
            raise InvalidName(f"repo name {show(self.name)} must not end with '.git'")

    @classmethod
    def parse(cls, text: str) -> RepoName:
        """`owner/name` as typed by a user or sent by the web app."""
        owner, slash, name = text.partition("/")
        if not slash or "/" in name:
            raise InvalidName(f"repo {show(text)} is not of the form owner/name")
        return cls(owner, name)

    @classmethod
    def from_slug(cls, slug: str) -> RepoName:
        """The inverse of `.slug`: `owner__name`, split on the first `__` (owners have no `_`)."""
        owner, sep, name = slug.partition(SEPARATOR)
        if not sep:
            raise InvalidName(f"repo directory {show(slug)} is not of the form owner__name")
        return cls(owner, name)

    @property
    def slug(self) -> str:
        return f"{self.owner}{SEPARATOR}{self.name}"

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


def validate_session_id(session_id: str) -> str:
    """An opencode session id such as `ses_3f1c...`: letters, digits, `_` and `-`, 1-64 characters.

    It may not start with `_` or `-` nor contain `__`, so `owner__name__<id>` splits unambiguously.
    """
    if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id) or SEPARATOR in session_id:
        raise InvalidName(
            f"session id {show(str(session_id))} is not a session id (letters, digits, '_' and '-', "
            "1-64 characters, starting with a letter or digit, no '__')"
        )
    return session_id


def validate_branch(branch: str) -> str:
    """A branch name git accepts under `refs/heads/` (git check-ref-format), at most 200 characters,
    not starting with `-` so it can never read as an option."""
    if not isinstance(branch, str) or not branch:
        raise InvalidName("branch name is empty")
    if len(branch) > BRANCH_MAX:
        raise InvalidName(f"branch {show(branch)} is longer than {BRANCH_MAX} characters")
    problem = _branch_problem(branch)
    if problem:
        raise InvalidName(f"branch {show(branch)} is not a valid git branch name: {problem}")
    return branch


def _branch_problem(branch: str) -> str | None:
    if branch.startswith("-"):
        return "it starts with '-'"
    if _REF_FORBIDDEN.search(branch):
        return "it contains a space, a control character or one of ~ ^ : ? * [ \\"
    if ".." in branch or "@{" in branch or branch in ("@", "HEAD"):
        return "it contains '..' or '@{' or is '@' or 'HEAD'"
    if branch.endswith("."):
        return "it ends with '.'"
    for part in branch.split("/"):
        if not part:
            return "it has an empty path component"
        if part.startswith("."):
            return "a path component starts with '.'"
        if part.endswith(".lock"):
            return "a path component ends with '.lock'"
    return None


def worktree_slug(repo: RepoName, session_id: str) -> str:
    return f"{repo.slug}{SEPARATOR}{validate_session_id(session_id)}"


def parse_worktree_slug(slug: str) -> tuple[RepoName, str]:
    """The inverse of `worktree_slug`: split on the last `__` (session ids have none)."""
    head, sep, session_id = slug.rpartition(SEPARATOR)
    if not sep:
        raise InvalidName(f"worktree directory {show(slug)} is not of the form owner__name__session")
    return RepoName.from_slug(head), validate_session_id(session_id)


def inside(root: Path, path: Path, what: str = "path") -> Path:
    """`path` resolved, after checking it lies strictly inside `root` (symlinks followed)."""
    real_root = root.resolve()
    real = path.resolve()
    if real == real_root or real_root not in real.parents:
        raise InvalidName(f"{what} {show(str(path.name))} resolves outside its directory")
    return real
