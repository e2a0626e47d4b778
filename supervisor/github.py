"""The user's GitHub repositories, newest push first, for the repo picker.

With `GITHUB_TOKEN`: `GET /user/repos` (private ones included). Without it but with `GITHUB_USER`:
that user's public repos. The token goes in a header only; no error message ever carries it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from supervisor.errors import GitHubError

_PAGES = 5  # 500 repos: enough for a picker, bounded for a phone waiting on it
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass(frozen=True)
class GitHubRepo:
    full_name: str
    owner: str
    name: str
    private: bool
    description: str | None
    default_branch: str
    pushed_at: str | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def list_repos(
    api: str, *, token: str | None, user: str | None, timeout: float = 15.0
) -> list[GitHubRepo]:
    if token:
        url: str | None = f"{api.rstrip('/')}/user/repos"
        params: dict[str, Any] | None = {"sort": "pushed", "per_page": 100}
    elif user:
        url = f"{api.rstrip('/')}/users/{user}/repos"
        params = {"sort": "pushed", "per_page": 100}
    else:
        raise GitHubError(
            "set GITHUB_TOKEN (or GITHUB_USER for public repos) to list GitHub repos", status=503
        )
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    repos: list[GitHubRepo] = []
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        for _ in range(_PAGES):
            if url is None:
                break
            try:
                response = await client.get(url, params=params)
            except httpx.HTTPError as exc:
                raise GitHubError(f"GitHub API could not be reached: {type(exc).__name__}") from None
            if response.status_code in (401, 403):
                raise GitHubError(
                    f"GitHub API refused the token ({response.status_code}): check GITHUB_TOKEN"
                )
            if response.status_code >= 400:
                raise GitHubError(f"GitHub API answered {response.status_code}")
            try:
                page = response.json()
                repos += [_repo(item) for item in page]
            except (ValueError, TypeError, KeyError):
                raise GitHubError("GitHub API answered something that is not a repo list") from None
            match = _NEXT.search(response.headers.get("link", ""))
            url, params = (match[1], None) if match else (None, None)
    # GitHub sorts already; sorting again keeps the promise when pages race with a push
    return sorted(repos, key=lambda r: r.pushed_at or "", reverse=True)


def _repo(item: dict[str, Any]) -> GitHubRepo:
    return GitHubRepo(
        full_name=item["full_name"],
        owner=item["owner"]["login"],
        name=item["name"],
        private=bool(item.get("private")),
        description=item.get("description"),
        default_branch=item.get("default_branch") or "main",
        pushed_at=item.get("pushed_at"),
    )
