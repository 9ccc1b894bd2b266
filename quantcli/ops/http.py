"""Fetching session files from providers in order: one pooled HTTP client per run, timeouts,
retries with backoff, and a report of every attempt.

Retries are httpx-retries' ``RetryTransport`` (exponential backoff with full jitter, capped,
``Retry-After`` honoured and capped the same way; timeouts, network and protocol errors, 429 and
5xx retried; other 4xx not). One thing it lacks is added here: it wraps only the exchange of
headers, so a response that stalls mid-body would escape it; the observing transport under it
reads each body inside the retry loop, and records each attempt (status, bytes, latency) for the
``on_attempt`` observer. The proxy environment (HTTP(S)_PROXY, NO_PROXY) applies as it does to
any httpx client. httpx is imported only when a ``Fetcher`` opens.

Failure semantics for one session: providers are tried in order, each until its retries are
spent or it answers with something final (a 404 or other 4xx, a file that fails its check, which
a retry would only fetch again). The first usable file wins. When none is, the error is
``BadDownload`` (exit 65) if every provider served a file and every file failed its check (the
data itself is wrong: a changed layout needs a person), else ``ProvidersUnavailable`` (exit 69:
try again later); both list each provider's last failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, Self

from quantcli import __version__
from quantcli.core.futures import in_order
from quantcli.core.redact import redact
from quantcli.errors import UnavailableError, UsageError
from quantcli.ops.download import BadDownload, Check
from quantcli.ops.providers import Provider, render

if TYPE_CHECKING:
    import httpx

Outcome = Literal["ok", "retry", "redirect", "not_found", "failed", "bad_download", "wrong_session"]
_LOG: Final = "quantcli.attempts"  # request extension: the list the observing transport fills


@dataclass(frozen=True)
class Attempt:
    """One request (or one local read) for one session at one provider.

    ``provider`` is the provider's label and ``url`` the redacted URL or path; ``status`` the
    HTTP status (None for a local file or when no response came); ``bytes`` the body's length;
    ``attempt`` counts from 1 at each provider; ``outcome`` is ``ok``, ``retry`` (failed and
    retried), ``redirect`` (a 3xx followed), ``not_found`` (404 or no such file: next
    provider), ``failed`` (retries spent, or a final HTTP error), ``bad_download`` or
    ``wrong_session`` (the file failed its check);
    ``detail`` says why in words ("HTTP 503", "read timeout", the check's problem).
    """

    provider: str
    url: str
    status: int | None
    bytes: int
    latency_s: float
    attempt: int
    outcome: Outcome
    day: date
    detail: str = ""


@dataclass(frozen=True)
class Fetched:
    """One session's checked file: the CSV ``content``, the label of the provider that served
    it, every attempt made for the session (all providers) and the seconds they took."""

    day: date
    provider_label: str
    content: bytes
    attempts: tuple[Attempt, ...]
    latency_s: float


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts, retries and concurrency of one run's fetching.

    ``retries`` is the number of retries after the first request, per provider and session;
    the n-th retry waits a random time up to ``backoff_base_s * 2**n``, at most
    ``backoff_cap_s`` (which also caps a server's Retry-After). ``concurrency`` bounds the
    sessions fetched at once (and so the pooled connections).
    """

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    retries: int = 3
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    concurrency: int = 4

    def __post_init__(self) -> None:
        """UsageError naming the ``[refresh]`` setting for a value the client cannot use (a
        zero cap would also zero a server's Retry-After)."""
        rules = [
            ("connect_timeout", self.connect_timeout_s, self.connect_timeout_s > 0, "> 0"),
            ("read_timeout", self.read_timeout_s, self.read_timeout_s > 0, "> 0"),
            ("retries", self.retries, self.retries >= 0, "a whole number >= 0"),
            ("backoff_base", self.backoff_base_s, self.backoff_base_s >= 0, ">= 0"),
            ("backoff_cap", self.backoff_cap_s, self.backoff_cap_s > 0, "> 0"),
            ("concurrency", self.concurrency, self.concurrency >= 1, "a whole number >= 1"),
        ]
        for key, value, ok, rule in rules:
            if not ok:
                raise UsageError(f"[refresh] {key} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class ProviderFailure:
    """A provider's last failure for a session: its label, the redacted URL and the reason."""

    provider: str
    url: str
    problem: str
    bad_download: bool = False


class ProvidersUnavailable(UnavailableError):  # noqa: N818 (the name issue 12's interface uses)
    """No provider delivered a session's file (network or HTTP failures after retries)."""

    def __init__(self, day: date, failures: Sequence[ProviderFailure]) -> None:
        super().__init__(
            f"{day.isoformat()}: no provider delivered the session ({_listed(failures)}); "
            "try again later, or add a provider (data recipe set --provider)"
        )
        self.day = day
        self.failures = tuple(failures)


Observer = Callable[[Attempt], None]


@dataclass
class _Try:
    status: int | None
    nbytes: int
    latency_s: float
    error: str | None = None


@dataclass
class _Outcome:
    attempts: list[Attempt] = field(default_factory=list)
    content: bytes | None = None
    failure: ProviderFailure | None = None


class Fetcher:
    """Fetches sessions' files from providers; a context manager owning one pooled HTTP client.

    ``on_attempt`` is called with every ``Attempt``, so logging and metrics need not know this
    module: a provider's attempts for a session are reported together once it is done with the
    session (its outcome known), from one thread at a time, in order within the session.
    """

    def __init__(self, policy: HttpPolicy | None = None, *, on_attempt: Observer | None = None):
        self.policy = policy or HttpPolicy()
        self._observer = on_attempt
        self._observer_lock = threading.Lock()
        self._client: httpx.Client | None = None

    def __enter__(self) -> Self:
        self._client = _client(self.policy)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def fetch(self, day: date, providers: Sequence[Provider], check: Check) -> Fetched:
        """``day``'s file from the first of ``providers`` that delivers one passing ``check``.

        Raises BadDownload or ProvidersUnavailable (see the module's failure semantics), and
        UsageError for no providers at all.
        """
        if not providers:
            raise UsageError("no providers to fetch from: give at least one --provider")
        start = time.perf_counter()
        attempts: list[Attempt] = []
        failures: list[ProviderFailure] = []
        for provider in providers:
            result = self._from(provider, day, check)
            attempts.extend(result.attempts)
            self._report(result.attempts)
            if result.content is not None:
                return Fetched(
                    day,
                    provider.label,
                    result.content,
                    tuple(attempts),
                    time.perf_counter() - start,
                )
            assert result.failure is not None
            failures.append(result.failure)
        if all(f.bad_download for f in failures):
            raise BadDownload(_listed(failures), day=day)
        raise ProvidersUnavailable(day, failures)

    def fetch_many(
        self, days: Iterable[date], providers: Sequence[Provider], check: Check
    ) -> Iterator[Fetched]:
        """Each of ``days`` fetched (at most ``policy.concurrency`` at once), yielded in the order
        given; the first session that cannot be fetched raises its error once every session
        before it has been yielded, and sessions not yet started are not fetched."""
        with ThreadPoolExecutor(max_workers=self.policy.concurrency) as pool:
            yield from in_order([pool.submit(self.fetch, day, providers, check) for day in days])

    def _report(self, attempts: Sequence[Attempt]) -> None:
        if self._observer is None:
            return
        with self._observer_lock:
            for attempt in attempts:
                self._observer(attempt)

    def _from(self, provider: Provider, day: date, check: Check) -> _Outcome:
        target = render(provider, day)
        shown = redact(target)
        if provider.kind == "dir":
            tries, content, status = _read_local(Path(target))
        else:
            tries, content, status = self._get(target, shown)
        outcome = _Outcome()
        retries = 0
        for number, t in enumerate(tries[:-1], start=1):
            moved = t.status is not None and 300 <= t.status < 400
            retries += not moved
            kind: Outcome = "redirect" if moved else "retry"
            outcome.attempts.append(_attempt(provider, shown, day, t, number, kind, t.error or ""))
        last = tries[-1]
        final: Outcome
        if content is not None:
            try:
                outcome.content = check(day, content)
            except BadDownload as exc:
                final = "wrong_session" if exc.wrong_session else "bad_download"
                problem = exc.problem
                outcome.failure = ProviderFailure(provider.label, shown, problem, True)
            else:
                final, problem = "ok", ""
        else:
            problem = last.error or f"HTTP {status}"
            final = "not_found" if status == 404 or problem == _NO_FILE else "failed"
            if retries:
                problem = f"{problem} after {retries} {'retry' if retries == 1 else 'retries'}"
            outcome.failure = ProviderFailure(provider.label, shown, problem)
        outcome.attempts.append(_attempt(provider, shown, day, last, len(tries), final, problem))
        return outcome

    def _get(self, url: str, shown: str) -> tuple[list[_Try], bytes | None, int | None]:
        import httpx

        if self._client is None:
            raise RuntimeError("Fetcher used outside its with-block")
        tries: list[_Try] = []
        try:
            response = self._client.get(url, extensions={_LOG: tries})
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if not tries:  # refused before any transport ran (an unusable URL)
                tries.append(_Try(None, 0, 0.0, _describe(exc, url, shown)))
            return tries, None, None
        if response.status_code != 200:
            return tries, None, response.status_code
        return tries, response.content, response.status_code


_NO_FILE: Final = "no such file"


def _read_local(path: Path) -> tuple[list[_Try], bytes | None, int | None]:
    start = time.perf_counter()
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return [_Try(None, 0, time.perf_counter() - start, _NO_FILE)], None, None
    except OSError as exc:
        return [_Try(None, 0, time.perf_counter() - start, exc.strerror or str(exc))], None, None
    return [_Try(None, len(content), time.perf_counter() - start)], content, None


def _attempt(
    provider: Provider, url: str, day: date, t: _Try, number: int, outcome: Outcome, detail: str
) -> Attempt:
    detail = detail or t.error or (f"HTTP {t.status}" if t.status is not None else "")
    return Attempt(
        provider.label, url, t.status, t.nbytes, t.latency_s, number, outcome, day, detail
    )


def _listed(failures: Sequence[ProviderFailure]) -> str:
    return "; ".join(f"{f.provider} {f.url}: {f.problem}" for f in failures)


def _describe(exc: BaseException, url: str, shown: str) -> str:
    """An httpx error in words, without the secrets of ``url``."""
    import httpx

    kinds: list[tuple[type[BaseException], str]] = [
        (httpx.ConnectTimeout, "connect timeout"),
        (httpx.ReadTimeout, "read timeout"),
        (httpx.TimeoutException, "timeout"),
        (httpx.ConnectError, "connection failed"),
        (httpx.RemoteProtocolError, "protocol error"),
        (httpx.NetworkError, "network error"),
    ]
    name = next((text for kind, text in kinds if isinstance(exc, kind)), type(exc).__name__)
    message = str(exc).replace(url, shown)
    return f"{name} ({message})" if message else name


def _client(policy: HttpPolicy) -> httpx.Client:
    import httpx
    from httpx_retries import Retry, RetryTransport

    retry = Retry(
        total=policy.retries,
        backoff_factor=policy.backoff_base_s,
        max_backoff_wait=policy.backoff_cap_s,
        status_forcelist=[429, *range(500, 600)],
        respect_retry_after_header=True,
    )
    limits = httpx.Limits(
        max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency
    )

    def transport(proxy: str | None) -> httpx.BaseTransport:
        inner = _observing(httpx.HTTPTransport(limits=limits, proxy=proxy))
        return RetryTransport(transport=inner, retry=retry)

    # httpx reads HTTP(S)_PROXY and NO_PROXY only for the transports it builds itself, so the
    # retrying transports are mounted by the same rules (its own function, so they match).
    from httpx._utils import get_environment_proxies

    mounts = {
        pattern: None if proxy is None else transport(proxy)
        for pattern, proxy in get_environment_proxies().items()
    }
    return httpx.Client(
        transport=transport(None),
        mounts=mounts,
        timeout=httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s),
        headers={"User-Agent": f"quantcli/{__version__}"},
        follow_redirects=True,
    )


def _observing(inner: httpx.BaseTransport) -> httpx.BaseTransport:
    """A transport under the retry transport that reads each body inside the retry loop and
    records each try in the request's attempts list (a class made here: httpx loads lazily)."""
    import httpx

    class Observing(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            tries: list[_Try] = request.extensions.get(_LOG, [])
            start = time.perf_counter()
            response: httpx.Response | None = None
            try:
                response = inner.handle_request(request)
                response.read()
            except httpx.HTTPError as exc:
                if response is not None:
                    response.close()
                url = str(request.url)
                error = _describe(exc, url, redact(url))
                tries.append(_Try(None, 0, time.perf_counter() - start, error))
                raise
            nbytes = len(response.content)
            tries.append(_Try(response.status_code, nbytes, time.perf_counter() - start))
            return response

        def close(self) -> None:
            inner.close()

    return Observing()
