"""One way to fetch a body: explicit timeouts, a User-Agent, a size cap, and errors that say if a retry may help.

Sources call `fetch_body`; the demo and the tests pass a client built on `httpx.MockTransport`, so the same
code runs live and offline.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import httpx

USER_AGENT = "token-spot-index/0.1 (+https://github.com/token-spot-index; price index collector)"
TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0)
LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=4)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class FetchedBody:
    url: str
    status: int
    content_type: str
    body: bytes
    fetched_at: datetime  # UTC


class FetchError(Exception):
    """A fetch that gave no usable body. `transient` says whether trying again later may help."""

    def __init__(self, url: str, message: str, *, transient: bool, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(f"{url}: {message}")
        self.url = url
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


def make_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        transport=transport,
        timeout=TIMEOUT,
        limits=LIMITS,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
    )


def fetch_body(
    client: httpx.Client,
    url: str,
    *,
    params: dict | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    clock: Callable[[], datetime] = utc_now,
) -> FetchedBody:
    """GET `url` and return its body, refusing bodies over `max_bytes` (counted as they arrive)."""
    try:
        with client.stream("GET", url, params=params) as response:
            if response.status_code >= 400:
                raise FetchError(
                    url,
                    f"HTTP {response.status_code}",
                    transient=response.status_code in TRANSIENT_STATUSES,
                    status=response.status_code,
                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                )
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(url, f"body of {declared} bytes exceeds the cap of {max_bytes}", transient=False)
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(url, f"body exceeds the cap of {max_bytes} bytes", transient=False)
                chunks.append(chunk)
            return FetchedBody(
                url=str(response.url),
                status=response.status_code,
                content_type=response.headers.get("Content-Type", ""),
                body=b"".join(chunks),
                fetched_at=clock(),
            )
    except httpx.TimeoutException as exc:
        raise FetchError(url, f"timed out ({type(exc).__name__})", transient=True) from exc
    except httpx.TransportError as exc:
        raise FetchError(url, f"transport error: {exc}", transient=True) from exc


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, (parsedate_to_datetime(value) - utc_now()).total_seconds())
        except (TypeError, ValueError):
            return None
