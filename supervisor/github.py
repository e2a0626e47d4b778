"""The user's GitHub repositories, newest push first, for the repo picker.

With `GITHUB_TOKEN`: `GET /user/repos` (private ones included). Without it but with `GITHUB_USER`:
that user's public repos. The token goes in a header only; no error message ever carries it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import structlog

from . import http
from .errors import GitHubError

log = structlog.get_logger("dancodes.github")

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


def api_headers(token: str | None) -> dict[str, str]:
    """What every call to GitHub's REST API sends: its JSON type, its pinned version, the token."""
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def get_user(api: str, token: str, *, timeout: float = 3.0) -> dict[str, Any] | None:
    """`GET /user` with the token; None (logged) when GitHub cannot say."""
    try:
        async with http.client(timeout=timeout, headers=api_headers(token)) as client:
            response = await client.get(f"{api.rstrip('/')}/user")
    except httpx.HTTPError as exc:
        log.warning("github_user_unknown", reason=f"GitHub API could not be reached: {type(exc).__name__}")
        return None
    if response.status_code != 200:
        log.warning(
            "github_user_unknown", reason=f"GitHub API answered GET /user with {response.status_code}"
        )
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else None


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
    headers = api_headers(token)
    repos: list[GitHubRepo] = []
    async with http.client(timeout=timeout, headers=headers) as client:
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


@dataclass(frozen=True)
class PullRequest:
    url: str
    number: int
    created: bool  # False: an open one for the same branch was there already

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "number": self.number, "created": self.created}


async def open_pull(
    api: str,
    *,
    token: str,
    owner: str,
    name: str,
    head: str,
    base: str,
    title: str,
    body: str,
    draft: bool,
    timeout: float = 15.0,
) -> PullRequest:
    """The open PR of branch `head` into `base`, or a new one. GitHub's refusals come back as one
    line with its own message and a status that says whose fault it is (422, 403, 404; 502)."""
    headers = api_headers(token)
    pulls = f"{api.rstrip('/')}/repos/{owner}/{name}/pulls"
    async with http.client(timeout=timeout, headers=headers) as client:
        try:
            found = await client.get(pulls, params={"head": f"{owner}:{head}", "state": "open"})
            if found.status_code == 200 and isinstance(found.json(), list) and found.json():
                return _pull(found.json()[0], created=False)
            if found.status_code != 200:
                raise _github_refusal("looking for an open pull request", found)
            made = await client.post(
                pulls, json={"title": title, "body": body, "head": head, "base": base, "draft": draft}
            )
        except httpx.HTTPError as exc:
            raise GitHubError(f"GitHub API could not be reached: {type(exc).__name__}") from None
        except ValueError:
            raise GitHubError("GitHub API answered something that is not JSON") from None
    if made.status_code != 201:
        raise _github_refusal("opening the pull request", made)
    try:
        return _pull(made.json(), created=True)
    except ValueError:
        raise GitHubError("GitHub API answered something that is not JSON") from None


def _pull(item: Any, *, created: bool) -> PullRequest:
    try:
        return PullRequest(url=str(item["html_url"]), number=int(item["number"]), created=created)
    except (KeyError, TypeError, ValueError):
        raise GitHubError("GitHub API answered a pull request without a url or number") from None


def _github_refusal(doing: str, response: httpx.Response) -> GitHubError:
    """GitHub's own words, on one line: its `message` and the first error's `message` if any."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    words = []
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            words.append(body["message"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0].get("message")
            if isinstance(first, str):
                words.append(first)
    said = ": ".join(words) or f"HTTP {response.status_code}"
    said = " ".join(said.split())[:300]
    status = response.status_code if response.status_code in (403, 404, 422) else 502
    if response.status_code == 401:
        said = f"GitHub refused the token (401): {said}; check GITHUB_TOKEN"
    return GitHubError(f"GitHub refused {doing}: {said}", status=status)
