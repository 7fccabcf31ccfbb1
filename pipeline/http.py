"""One way to fetch a body: explicit timeouts, a User-Agent, a size cap, politeness per host, a time budget,
and errors that say whether a retry may help.

Sources call `fetch_body`; the demo and the tests pass a client built on `httpx.MockTransport`, so the same
code runs live and offline.

A collection runs its fetches inside a `fetch_scope`, which gives them a time budget (per attempt: every page
of one request) and a `HostPoliteness` shared by the whole run: at most a few requests in flight per host,
and none to a host before the time its last `Retry-After` named. The budget counts the time spent on the
source; waiting for its host (a free slot, a Retry-After to pass) is not charged to it and is bounded on its
own. Sources need not know any of this: they call `fetch_body` as before and the scope, a context variable,
reaches it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx

USER_AGENT = "token-spot-index/0.1 (+https://github.com/token-spot-index; price index collector)"
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 30.0
TIMEOUT = httpx.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS, write=10.0, pool=10.0)
LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=4)
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

# One attempt at one request (every page of a paged API) gets this long unless its source module sets
# FETCH_BUDGET_SECONDS: the largest catalog takes seconds, so five minutes means something is wrong.
DEFAULT_SOURCE_BUDGET_SECONDS = 300.0
# Requests in flight to one host at a time, across every source of a run (the SkyPilot catalogs and the
# OpenRouter endpoints each share one host).
DEFAULT_PER_HOST_LIMIT = 2
# A server asking for a longer pause than this is not retried in this run: waiting longer would hold the run
# (and the fixing after it) hostage, and retrying sooner than asked would be impolite.
MAX_RETRY_AFTER_SECONDS = 300.0
# The longest one request waits for its host (a free slot, a Retry-After to pass) before it gives up.
MAX_HOST_WAIT_SECONDS = 600.0


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


@dataclass(frozen=True)
class FetchPolicy:
    """How a collection fetches. The defaults are production's; tests pass short timeouts and delays.

    It is a flow parameter (plain fields, JSON in a deployment), so Prefect shows it in the UI and a
    deployment run may override any field.
    """

    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS
    # Per attempt at one request; None: the source's FETCH_BUDGET_SECONDS, else DEFAULT_SOURCE_BUDGET_SECONDS.
    source_budget_seconds: float | None = None
    retries: int = 3
    # None: exponential backoff 10, 20, 40 s (each with up to 50% jitter).
    retry_delays_seconds: list[float] | None = None
    per_host_limit: int = DEFAULT_PER_HOST_LIMIT
    max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS
    max_host_wait_seconds: float = MAX_HOST_WAIT_SECONDS

    def __post_init__(self):
        for name in ("connect_timeout_seconds", "read_timeout_seconds", "max_retry_after_seconds",
                     "max_host_wait_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FetchPolicy.{name} must be positive")
        if self.source_budget_seconds is not None and not self.source_budget_seconds > 0:
            raise ValueError("FetchPolicy.source_budget_seconds must be positive")
        if not 0 <= self.retries <= 10:
            raise ValueError("FetchPolicy.retries must be between 0 and 10")
        if self.per_host_limit < 1:
            raise ValueError("FetchPolicy.per_host_limit must be at least 1")
        if self.retry_delays_seconds is not None and (
            not self.retry_delays_seconds or any(d < 0 for d in self.retry_delays_seconds)
        ):
            raise ValueError("FetchPolicy.retry_delays_seconds must be None or a list of delays >= 0 (the last one "
                             "repeats for further retries)")

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout_seconds, read=self.read_timeout_seconds,
                             write=self.connect_timeout_seconds, pool=self.connect_timeout_seconds)

    def budget_for(self, source: object) -> float:
        """The time budget of one attempt at one of `source`'s requests (a source module)."""
        if self.source_budget_seconds is not None:
            return self.source_budget_seconds
        return float(getattr(source, "FETCH_BUDGET_SECONDS", DEFAULT_SOURCE_BUDGET_SECONDS))


class HostPoliteness:
    """Politeness towards each host, shared by every fetch of a run (the threads of one process).

    `slot(host, wait_until)` waits until the host may be asked again (a `Retry-After` it sent) and until fewer
    than `per_host` requests to it are in flight, and yields how many seconds it waited; `defer(host,
    seconds)` records a `Retry-After`. No wait goes past `wait_until`.
    """

    def __init__(self, per_host: int = DEFAULT_PER_HOST_LIMIT, clock: Callable[[], float] = time.monotonic):
        if per_host < 1:
            raise ValueError("per_host must be at least 1")
        self.per_host = per_host
        self._clock = clock
        self._changed = threading.Condition()
        self._in_flight: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self.max_in_flight: dict[str, int] = {}  # the most seen at once, per host: for the run's record

    def not_before(self, host: str) -> float:
        with self._changed:
            return self._not_before.get(host, 0.0)

    def defer(self, host: str, seconds: float) -> None:
        with self._changed:
            until = self._clock() + seconds
            if until > self._not_before.get(host, 0.0):
                self._not_before[host] = until
            self._changed.notify_all()

    @contextmanager
    def slot(self, host: str, wait_until: float, url: str = "") -> Iterator[float]:
        with self._changed:
            started = now = self._clock()
            while True:
                opens = self._not_before.get(host, 0.0)
                if opens >= wait_until:
                    raise FetchError(url or host, f"{host} asked to wait {opens - now:.1f} s more (Retry-After), "
                                     "longer than a request may wait for its host", transient=True)
                if now >= wait_until:
                    raise FetchError(url or host, f"no free slot for {host} after {now - started:.1f} s "
                                     f"({self.per_host} requests at a time)", transient=True)
                if now < opens:
                    self._changed.wait(timeout=opens - now)
                elif self._in_flight.get(host, 0) >= self.per_host:
                    self._changed.wait(timeout=wait_until - now)
                else:
                    break
                now = self._clock()
            self._in_flight[host] = self._in_flight.get(host, 0) + 1
            self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self._in_flight[host])
        try:
            yield now - started
        finally:
            with self._changed:
                self._in_flight[host] -= 1
                self._changed.notify_all()


@dataclass
class _Scope:
    budget_seconds: float
    politeness: HostPoliteness | None
    max_retry_after_seconds: float
    max_host_wait_seconds: float
    started: float = field(default_factory=time.monotonic)
    waited: float = 0.0  # seconds spent waiting for the host: not charged to the budget

    @property
    def deadline(self) -> float:
        return self.started + self.budget_seconds + self.waited


_SCOPE: ContextVar[_Scope | None] = ContextVar("tsi_fetch_scope", default=None)


@contextmanager
def fetch_scope(budget_seconds: float, politeness: HostPoliteness | None = None,
                max_retry_after_seconds: float = MAX_RETRY_AFTER_SECONDS,
                max_host_wait_seconds: float = MAX_HOST_WAIT_SECONDS) -> Iterator[None]:
    """Every `fetch_body` inside (one attempt at one request, in one thread) shares one time budget, counted
    from now, and one politeness."""
    token = _SCOPE.set(_Scope(budget_seconds, politeness, max_retry_after_seconds, max_host_wait_seconds))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def make_client(transport: httpx.BaseTransport | None = None, timeout: httpx.Timeout = TIMEOUT) -> httpx.Client:
    return httpx.Client(
        transport=transport,
        timeout=timeout,
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
    """GET `url` and return its body, refusing bodies over `max_bytes` (counted as they arrive).

    Inside a `fetch_scope` the request waits for its host's politeness slot (not charged to the budget, but
    bounded), never outlasts the scope's budget (a server trickling bytes faster than the read timeout but
    for ever would otherwise hold it), and a `Retry-After` closes the host to the whole run for that long.
    """
    scope = _SCOPE.get() or _Scope(DEFAULT_SOURCE_BUDGET_SECONDS, None, MAX_RETRY_AFTER_SECONDS,
                                   MAX_HOST_WAIT_SECONDS)
    budget, politeness = scope.budget_seconds, scope.politeness
    host = httpx.URL(url).host
    wait_for_host = (
        politeness.slot(host, time.monotonic() + scope.max_host_wait_seconds, url) if politeness else nullcontext(0.0)
    )
    try:
        with wait_for_host as waited:
            scope.waited += waited
            deadline = scope.deadline
            timeout = _within(client.timeout, deadline - time.monotonic())
            with client.stream("GET", url, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise _status_error(url, response, scope.max_retry_after_seconds, politeness, host)
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(url, f"body of {declared} bytes exceeds the cap of {max_bytes}", transient=False)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(url, f"body exceeds the cap of {max_bytes} bytes", transient=False)
                    if time.monotonic() > deadline:
                        raise FetchError(url, f"timed out (body still arriving after the {budget:g} s budget)",
                                         transient=True)
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


def _within(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """The client's timeouts, none longer than what is left of the budget."""
    if remaining <= 0:
        remaining = 0.001  # let httpx raise its own timeout rather than wait

    def clip(value: float | None) -> float:
        return remaining if value is None else min(value, remaining)

    return httpx.Timeout(connect=clip(timeout.connect), read=clip(timeout.read), write=clip(timeout.write),
                         pool=clip(timeout.pool))


def _status_error(url: str, response: httpx.Response, max_retry_after: float,
                  politeness: HostPoliteness | None, host: str) -> FetchError:
    status = response.status_code
    transient = status in TRANSIENT_STATUSES
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    message = f"HTTP {status}"
    if retry_after is not None and transient:
        if retry_after > max_retry_after:
            # Honouring it would stall the run; retrying sooner would ignore the server. Give up for this run.
            transient = False
            message += f" (Retry-After {retry_after:g} s exceeds the cap of {max_retry_after:g} s; not retried)"
        elif politeness is not None:
            politeness.defer(host, retry_after)
    return FetchError(url, message, transient=transient, status=status, retry_after=retry_after)


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
