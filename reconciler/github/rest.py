"""GitHub's REST API, the little of it the workflows need, over httpx.

Called by ``reconciler.github``'s modules with a client built from the runner's
environment (``from_environment``): the API root is ``GITHUB_API_URL`` (GitHub's default
variables; ``https://api.github.com`` on github.com, ``https://HOST/api/v3`` on GitHub
Enterprise Server) and the token is the job's ``GITHUB_TOKEN`` (passed as ``GH_TOKEN`` or
``GITHUB_TOKEN``). The token is sent to that origin and nowhere else: a ``Link`` header's
next page on another origin is refused, and an artifact's download, which GitHub answers
with a redirect to short-lived storage, is fetched from there without it.

Headers and versioning follow GitHub's REST documentation ("Getting started with the
REST API"): ``Accept: application/vnd.github+json`` and ``X-GitHub-Api-Version:
2022-11-28``. Pagination follows ``Link: <...>; rel="next"`` ("Using pagination in the
REST API"). A failure becomes ``GitHubError`` with the status and GitHub's ``message``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler import __version__
from reconciler.errors import GitHubError

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
RETRIES = 3  # a 502/503/504 or a secondary rate limit is tried again, with a pause
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


@dataclass(frozen=True)
class Repository:
    owner: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Repository:
        owner, slash, name = text.partition("/")
        if not (owner and slash and name) or "/" in name:
            raise GitHubError(f"GITHUB_REPOSITORY must be OWNER/NAME, not {text!r}")
        return cls(owner, name)

    @property
    def path(self) -> str:
        return f"/repos/{self.owner}/{self.name}"


class Client:
    """A synchronous client: the workflows' steps are short and sequential."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        repository: Repository,
        transport: httpx.BaseTransport | None = None,
        pause: float = 2.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self._pause = pause
        self._http = httpx.Client(
            base_url=self.api_url,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"exotel-reconciler/{__version__}",
            },
            timeout=httpx.Timeout(30.0),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def repo(self, suffix: str = "") -> str:
        return self.repository.path + suffix

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.HTTPError as error:
                if attempt == RETRIES:
                    raise GitHubError(f"{method} {url}: no answer from GitHub ({error})") from None
                time.sleep(self._pause * (attempt + 1))
                continue
            limited = response.status_code in (403, 429) and (
                "retry-after" in response.headers
                or response.headers.get("x-ratelimit-remaining") == "0"
            )
            if (response.status_code in (502, 503, 504) or limited) and attempt < RETRIES:
                wait = float(response.headers.get("retry-after", self._pause * (attempt + 1)))
                time.sleep(min(wait, 60.0))
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._send(method, url, **kwargs)
        if response.status_code >= 400:
            raise GitHubError(f"{method} {url}: {_describe(response)}", status=response.status_code)
        return response

    def get(self, url: str, **params: Any) -> Any:
        return self._checked("GET", url, params=params or None).json()

    def post(self, url: str, body: Mapping[str, Any]) -> Any:
        return self._checked("POST", url, json=dict(body)).json()

    def patch(self, url: str, body: Mapping[str, Any]) -> Any:
        return self._checked("PATCH", url, json=dict(body)).json()

    def paginate(self, url: str, *, key: str | None = None, **params: Any) -> Iterator[Any]:
        """Every item of every page. ``key`` names the list in an object answer (the
        artifacts and workflow-run lists); otherwise the answer is the list."""
        query: dict[str, Any] | None = {"per_page": 100, **params}
        next_url: str | None = url
        while next_url:
            response = self._checked("GET", next_url, params=query)
            query = None  # the next link carries them (an empty dict would erase them)
            body = response.json()
            yield from (body.get(key, []) if key else body)
            found = _NEXT.search(response.headers.get("link", ""))
            next_url = found.group(1) if found else None
            if next_url and _origin(next_url) != _origin(self.api_url):
                raise GitHubError(
                    f"GitHub's next page is on another origin ({urlsplit(next_url).netloc}): "
                    "refusing to send the token there"
                )

    def download(self, url: str) -> bytes:
        """An artifact's zip: GitHub answers 302 to storage elsewhere ("Download an
        artifact"); that URL is signed and is fetched without the token."""
        response = self._send("GET", url)
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("location", "")
            if _origin(location) == _origin(self.api_url):
                return self._checked("GET", location).content
            with httpx.Client(timeout=httpx.Timeout(120.0), follow_redirects=True) as bare:
                try:
                    fetched = bare.get(location)
                except httpx.HTTPError as error:
                    raise GitHubError(f"artifact download failed: {error}") from None
            if fetched.status_code >= 400:
                raise GitHubError(f"artifact download failed: HTTP {fetched.status_code}")
            return fetched.content
        if response.status_code >= 400:
            raise GitHubError(f"GET {url}: {_describe(response)}", status=response.status_code)
        return response.content


def _describe(response: httpx.Response) -> str:
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        message = ""
    text = f"HTTP {response.status_code}"
    return f"{text}: {message}" if message else text


def from_environment(environ: Mapping[str, str], **options: Any) -> Client:
    token = environ.get("GH_TOKEN") or environ.get("GITHUB_TOKEN") or ""
    if not token:
        raise GitHubError(
            "no GitHub token: set GH_TOKEN (in a workflow, GH_TOKEN: ${{ github.token }})"
        )
    repository = Repository.parse(environ.get("GITHUB_REPOSITORY", ""))
    api = environ.get("GITHUB_API_URL") or DEFAULT_API
    scheme = urlsplit(api).scheme
    if scheme != "https" and urlsplit(api).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise GitHubError(f"GITHUB_API_URL must be https (it is {api})")
    return Client(api_url=api, token=token, repository=repository, **options)
