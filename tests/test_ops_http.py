"""The fetcher against a real loopback HTTP server: retries, timeouts, fall-through between
providers, download checks, redaction and bounded concurrency."""

from __future__ import annotations

import socket
import time
from datetime import date, timedelta
from email.utils import formatdate
from itertools import pairwise
from pathlib import Path

import pytest
from httpserver import (
    LEGACY_PATH,
    UDIFF_PATH,
    FixtureServer,
    clear_proxies,
    legacy_csv,
    legacy_zip,
    path_for,
    udiff_csv,
    udiff_zip,
)
from startup import modules_loaded

from quantcli.errors import UsageError
from quantcli.ops.download import BadDownload, bhavcopy_check
from quantcli.ops.http import Attempt, Fetched, Fetcher, HttpPolicy, ProvidersUnavailable
from quantcli.ops.providers import Provider, parse_provider

DAY = date(2024, 7, 5)
LEGACY = bhavcopy_check("legacy")
# Tiny delays: a retry waits at most a few milliseconds unless a test says otherwise.
FAST = HttpPolicy(read_timeout_s=0.5, connect_timeout_s=0.5, backoff_base_s=0.001, retries=3)


def legacy_provider(server: FixtureServer, prefix: str = "") -> Provider:
    return parse_provider(server.url + prefix + LEGACY_PATH)


def fetch(
    providers: list[Provider], policy: HttpPolicy = FAST, day: date = DAY
) -> tuple[Fetched | BadDownload | ProvidersUnavailable, list[Attempt]]:
    """The fetch's result or error, and every attempt the observer saw."""
    seen: list[Attempt] = []
    with Fetcher(policy, on_attempt=seen.append) as fetcher:
        try:
            return fetcher.fetch(day, providers, LEGACY), seen
        except (BadDownload, ProvidersUnavailable) as exc:
            return exc, seen


def outcomes(attempts: list[Attempt]) -> list[tuple[str, int | None, str]]:
    return [(a.outcome, a.status, a.detail) for a in attempts]


def test_a_clean_fetch(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    provider = legacy_provider(http_server)
    fetched, seen = fetch([provider])
    assert fetched.content == legacy_csv(DAY).encode()
    assert fetched.provider_label == provider.label
    assert fetched.day == DAY
    assert fetched.attempts == tuple(seen)
    (attempt,) = seen
    assert (attempt.outcome, attempt.status, attempt.attempt) == ("ok", 200, 1)
    assert attempt.bytes == len(legacy_zip(DAY))
    assert attempt.url == http_server.url + path_for(LEGACY_PATH, DAY)
    assert 0 < attempt.latency_s <= fetched.latency_s


def test_500_twice_then_ok_is_retried(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.fail(path, 500, times=2)
    fetched, seen = fetch([legacy_provider(http_server)])
    assert fetched.content == legacy_csv(DAY).encode()
    assert outcomes(seen) == [
        ("retry", 500, "HTTP 500"),
        ("retry", 500, "HTTP 500"),
        ("ok", 200, "HTTP 200"),
    ]
    assert [a.attempt for a in seen] == [1, 2, 3]
    assert http_server.hits(path) == 3


def test_retries_are_bounded_then_the_next_provider_serves(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    http_server.serve(path_for("/mirror" + LEGACY_PATH, DAY), legacy_zip(DAY))
    path = path_for(LEGACY_PATH, DAY)
    http_server.fail(path, 503, times=None)
    primary, mirror = legacy_provider(http_server), legacy_provider(http_server, "/mirror")
    fetched, seen = fetch([primary, mirror])
    assert fetched.provider_label == mirror.label
    assert http_server.hits(path) == 1 + FAST.retries
    assert [(a.provider, a.outcome) for a in seen] == [
        (primary.label, "retry"),
        (primary.label, "retry"),
        (primary.label, "retry"),
        (primary.label, "failed"),
        (mirror.label, "ok"),
    ]
    assert seen[3].detail == "HTTP 503 after 3 retries"


def test_every_provider_down_is_exit_69_naming_each(http_server: FixtureServer) -> None:
    http_server.fail(path_for(LEGACY_PATH, DAY), 500, times=None)
    primary, other = legacy_provider(http_server), legacy_provider(http_server, "/other")
    error, seen = fetch([primary, other])
    assert isinstance(error, ProvidersUnavailable)
    assert error.exit_code == 69
    assert str(error) == (
        f"2024-07-05: no provider delivered the session ("
        f"{primary.label} {http_server.url}{path_for(LEGACY_PATH, DAY)}: HTTP 500 after 3 retries; "
        f"{other.label} {http_server.url}/other{path_for(LEGACY_PATH, DAY)}: HTTP 404); "
        "try again later, or add a provider (data recipe set --provider)"
    )
    assert [f.provider for f in error.failures] == [primary.label, other.label]
    assert seen[-1].outcome == "not_found"


def test_404_moves_to_the_next_provider_at_once(http_server: FixtureServer) -> None:
    http_server.serve(path_for("/mirror" + LEGACY_PATH, DAY), legacy_zip(DAY))
    _, seen = fetch([legacy_provider(http_server), legacy_provider(http_server, "/mirror")])
    assert outcomes(seen) == [("not_found", 404, "HTTP 404"), ("ok", 200, "HTTP 200")]
    assert http_server.hits(path_for(LEGACY_PATH, DAY)) == 1


def test_other_4xx_are_not_retried(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.fail(path, 403, times=None)
    error, seen = fetch([legacy_provider(http_server)])
    assert isinstance(error, ProvidersUnavailable)
    assert outcomes(seen) == [("failed", 403, "HTTP 403")]
    assert http_server.hits(path) == 1


def test_a_response_slower_than_the_read_timeout_is_retried(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.stall(path, 2.0, times=1, where="headers")
    http_server.stall(path, 2.0, times=1, where="body")
    policy = HttpPolicy(read_timeout_s=0.2, backoff_base_s=0.001, retries=2)
    fetched, seen = fetch([legacy_provider(http_server)], policy)
    assert fetched.content == legacy_csv(DAY).encode()
    assert [(a.outcome, a.status) for a in seen] == [("retry", None), ("retry", None), ("ok", 200)]
    assert seen[0].detail.startswith("read timeout")
    assert seen[1].detail.startswith("read timeout")  # mid-body: inside the retry loop too
    assert all(0.2 <= a.latency_s < 1.5 for a in seen[:2])


def test_timeouts_every_time_are_exit_69(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    http_server.stall(path_for(LEGACY_PATH, DAY), 2.0, times=None)
    policy = HttpPolicy(read_timeout_s=0.1, backoff_base_s=0.001, retries=1)
    error, seen = fetch([legacy_provider(http_server)], policy)
    assert isinstance(error, ProvidersUnavailable)
    assert error.failures[0].problem == "read timeout (timed out) after 1 retry"
    assert [a.outcome for a in seen] == ["retry", "failed"]


def test_connection_refused_is_retried_then_exit_69(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error, seen = fetch([parse_provider(f"http://127.0.0.1:{port}/{{date:%Y%m%d}}.zip")])
    assert isinstance(error, ProvidersUnavailable)
    assert [a.outcome for a in seen] == ["retry", "retry", "retry", "failed"]
    assert all(a.detail.startswith("connection failed") for a in seen)


def test_429_honours_retry_after(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.throttle(path, retry_after_s=1)
    _, seen = fetch([legacy_provider(http_server)])
    assert [(a.outcome, a.status) for a in seen] == [("retry", 429), ("ok", 200)]
    first, second = http_server.times(path)
    assert second - first >= 1.0  # the server's wait, not the tiny backoff


def test_503_with_an_http_date_retry_after(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.fail(path, 503, retry_after=formatdate(time.time() + 2, usegmt=True))
    fetched, _ = fetch([legacy_provider(http_server)])
    assert fetched.content == legacy_csv(DAY).encode()
    first, second = http_server.times(path)
    assert second - first >= 0.9  # whole seconds: the date is 1 to 2 s ahead when sent


def test_retry_after_is_capped_by_the_backoff_cap(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.throttle(path, retry_after_s=3600)
    policy = HttpPolicy(backoff_base_s=0.001, backoff_cap_s=0.05)
    start = time.monotonic()
    fetched, _ = fetch([legacy_provider(http_server)], policy)
    assert fetched.content == legacy_csv(DAY).encode()
    assert time.monotonic() - start < 5


def test_backoff_waits_are_capped(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    path = path_for(LEGACY_PATH, DAY)
    http_server.fail(path, 502, times=None)
    policy = HttpPolicy(backoff_base_s=0.1, backoff_cap_s=0.15, retries=3)
    start = time.monotonic()
    fetch([legacy_provider(http_server)], policy)
    arrivals = http_server.times(path)
    gaps = [b - a for a, b in pairwise(arrivals)]
    assert len(gaps) == 3
    # Full jitter: each wait is at most min(base * 2**n, cap); the sum is bounded by the cap.
    assert all(gap < 0.15 + 0.1 for gap in gaps)
    assert time.monotonic() - start < 0.45 + 0.5


def test_a_truncated_zip_falls_through_and_says_so(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    http_server.serve(path_for("/mirror" + LEGACY_PATH, DAY), legacy_zip(DAY))
    http_server.truncate(path_for(LEGACY_PATH, DAY))
    _, seen = fetch([legacy_provider(http_server), legacy_provider(http_server, "/mirror")])
    assert [a.outcome for a in seen] == ["bad_download", "ok"]
    assert "not a readable zip archive" in seen[0].detail
    assert seen[0].bytes == len(legacy_zip(DAY)) // 2


def test_the_wrong_session_falls_through_and_says_so(http_server: FixtureServer) -> None:
    http_server.serve(path_for(LEGACY_PATH, DAY), legacy_zip(DAY - timedelta(days=1)))
    http_server.serve(path_for("/mirror" + LEGACY_PATH, DAY), legacy_zip(DAY))
    fetched, seen = fetch([legacy_provider(http_server), legacy_provider(http_server, "/mirror")])
    assert fetched.content == legacy_csv(DAY).encode()
    assert [a.outcome for a in seen] == ["wrong_session", "ok"]
    assert "the file is for 2024-07-04, not this session" in seen[0].detail


def test_only_bad_files_is_exit_65_naming_provider_url_day_and_problem(
    http_server: FixtureServer,
) -> None:
    http_server.serve(path_for(LEGACY_PATH, DAY), udiff_zip(DAY))  # the layout changed
    http_server.serve(path_for("/mirror" + LEGACY_PATH, DAY), b"<html>maintenance</html>")
    primary, mirror = legacy_provider(http_server), legacy_provider(http_server, "/mirror")
    error, seen = fetch([primary, mirror])
    assert isinstance(error, BadDownload)
    assert error.exit_code == 65
    assert str(error) == (
        f"2024-07-05: {primary.label} {http_server.url}{path_for(LEGACY_PATH, DAY)}: "
        "BhavCopy_NSE_CM_0_0_0_20240705_F_0000.csv: the layout changed: expected legacy "
        f"bhavcopy, found UDiFF bhavcopy; {mirror.label} "
        f"{http_server.url}/mirror{path_for(LEGACY_PATH, DAY)}: not a zip archive (it starts "
        "'<html>maintenance</html>')"
    )
    assert [a.outcome for a in seen] == ["bad_download", "bad_download"]


def test_a_bad_file_and_a_down_provider_is_exit_69(http_server: FixtureServer) -> None:
    http_server.serve(path_for(LEGACY_PATH, DAY), udiff_zip(DAY))
    error, _ = fetch([legacy_provider(http_server), legacy_provider(http_server, "/down")])
    assert isinstance(error, ProvidersUnavailable)


def test_udiff_from_the_server(http_server: FixtureServer) -> None:
    template = http_server.serve_sessions([DAY], "udiff")
    assert template == http_server.url + UDIFF_PATH
    with Fetcher(FAST) as fetcher:
        fetched = fetcher.fetch(DAY, [parse_provider(template)], bhavcopy_check("udiff"))
    assert fetched.content == udiff_csv(DAY).encode()


def test_a_drop_directory(tmp_path: Path, http_server: FixtureServer) -> None:
    drop = parse_provider(f"{tmp_path}/cm{{date:%d}}{{MON}}{{date:%Y}}bhav.csv.zip")
    (tmp_path / "cm05JUL2024bhav.csv.zip").write_bytes(legacy_zip(DAY))
    fetched, seen = fetch([drop])
    assert fetched.content == legacy_csv(DAY).encode()
    assert outcomes(seen) == [("ok", None, "")]
    assert seen[0].url == str(tmp_path / "cm05JUL2024bhav.csv.zip")
    http_server.serve_sessions([DAY + timedelta(days=3)])
    _, seen = fetch([drop, legacy_provider(http_server)], day=DAY + timedelta(days=3))
    assert [a.outcome for a in seen] == ["not_found", "ok"]
    assert seen[0].detail == "no such file"


def test_secrets_never_reach_attempts_or_errors(http_server: FixtureServer) -> None:
    secret = "hunter2-s3cr3t"
    http_server.fail(path_for(LEGACY_PATH, DAY), 500, times=None)
    provider = parse_provider(
        f"http://ops:{secret}@{http_server.url.removeprefix('http://')}{LEGACY_PATH}"
        f"?token={secret}&day={{date:%d}}"
    )
    error, seen = fetch([provider])
    assert isinstance(error, ProvidersUnavailable)
    assert secret not in str(error)
    assert secret not in repr(error.to_dict())
    assert all(secret not in repr(a) for a in seen)
    assert seen[0].url.endswith("?token=***&day=05")
    assert "://***@127.0.0.1" in seen[0].url


def test_fetch_many_in_order_bounded_and_stopping_at_the_first_failure(
    http_server: FixtureServer,
) -> None:
    days = [date(2024, 7, d) for d in (1, 2, 3, 4, 5, 8, 9, 10)]
    http_server.serve_sessions(days)
    for day in days:
        http_server.stall(path_for(LEGACY_PATH, day), 0.1, times=1)
    policy = HttpPolicy(read_timeout_s=2, concurrency=3, backoff_base_s=0.001)
    seen: list[Attempt] = []
    with Fetcher(policy, on_attempt=seen.append) as fetcher:
        got = [f.day for f in fetcher.fetch_many(days, [legacy_provider(http_server)], LEGACY)]
    assert got == days
    assert http_server.peak_in_flight == 3
    assert sorted(a.day for a in seen) == days

    missing = date(2024, 7, 11)  # never served: 404, the one provider fails
    later = [date(2024, 7, d) for d in (12, 15, 16, 17, 18, 19, 22, 23, 24)]
    http_server.serve_sessions(later)
    for day in later:
        http_server.stall(path_for(LEGACY_PATH, day), 0.3, times=1)
    policy = HttpPolicy(read_timeout_s=2, concurrency=2, backoff_base_s=0.001)
    with Fetcher(policy) as fetcher:
        wanted = [*days[:2], missing, *later]
        results = fetcher.fetch_many(wanted, [legacy_provider(http_server)], LEGACY)
        assert [next(results).day, next(results).day] == days[:2]
        with pytest.raises(ProvidersUnavailable, match="2024-07-11: no provider"):
            next(results)
    # Sessions after the failure that had not started were not fetched.
    assert sum(http_server.hits(path_for(LEGACY_PATH, day)) for day in later) < len(later)


def test_a_url_httpx_refuses_is_a_provider_failure() -> None:
    # parse_provider refuses such a URL; a Provider built by hand reaches the client.
    provider = Provider("url", "http://exa\x01mple/{date:%Y%m%d}", "hand-built")
    error, seen = fetch([provider])
    assert isinstance(error, ProvidersUnavailable)
    assert [(a.outcome, a.attempt) for a in seen] == [("failed", 1)]
    assert seen[0].detail.startswith("InvalidURL (Invalid non-printable ASCII character")


def test_redirects_are_followed_and_reported(http_server: FixtureServer) -> None:
    http_server.serve_sessions([DAY])
    moved = path_for("/moved" + LEGACY_PATH, DAY)
    http_server.redirect(moved, path_for(LEGACY_PATH, DAY))
    http_server.fail(path_for(LEGACY_PATH, DAY), 500, times=1)
    fetched, seen = fetch([legacy_provider(http_server, "/moved")])
    assert fetched.content == legacy_csv(DAY).encode()
    assert [(a.outcome, a.status) for a in seen] == [("redirect", 302), ("retry", 500), ("ok", 200)]


def test_retries_after_a_redirect_count_only_retries(http_server: FixtureServer) -> None:
    moved = path_for("/moved" + LEGACY_PATH, DAY)
    http_server.redirect(moved, path_for(LEGACY_PATH, DAY))
    http_server.fail(path_for(LEGACY_PATH, DAY), 500, times=None)
    policy = HttpPolicy(retries=1, backoff_base_s=0.001)
    error, seen = fetch([legacy_provider(http_server, "/moved")], policy)
    assert isinstance(error, ProvidersUnavailable)
    assert [a.outcome for a in seen] == ["redirect", "retry", "failed"]
    assert error.failures[0].problem == "HTTP 500 after 1 retry"


def test_proxies_from_the_environment_are_used_with_retries(
    http_server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixture server answers a proxy's absolute-URI requests by their path: a proxy.
    monkeypatch.setenv("HTTP_PROXY", http_server.url)
    http_server.serve_sessions([DAY])
    http_server.fail(path_for(LEGACY_PATH, DAY), 502, times=1)
    provider = parse_provider("http://archives.invalid" + LEGACY_PATH)
    fetched, seen = fetch([provider])
    assert fetched.content == legacy_csv(DAY).encode()
    assert [a.outcome for a in seen] == ["retry", "ok"]
    monkeypatch.setenv("NO_PROXY", "archives.invalid")
    error, seen = fetch([provider], HttpPolicy(retries=0))
    assert isinstance(error, ProvidersUnavailable)
    assert seen[0].detail.startswith("connection failed")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"connect_timeout_s": 0}, "[refresh] connect_timeout must be > 0, got 0"),
        ({"read_timeout_s": -1.0}, "[refresh] read_timeout must be > 0, got -1.0"),
        ({"retries": -1}, "[refresh] retries must be a whole number >= 0, got -1"),
        ({"backoff_base_s": -0.5}, "[refresh] backoff_base must be >= 0, got -0.5"),
        ({"backoff_cap_s": 0}, "[refresh] backoff_cap must be > 0, got 0"),
        ({"concurrency": 0}, "[refresh] concurrency must be a whole number >= 1, got 0"),
    ],
)
def test_unusable_policies_are_usage_errors(setting: dict[str, float], message: str) -> None:
    with pytest.raises(UsageError) as info:
        HttpPolicy(**setting)  # type: ignore[arg-type]
    assert str(info.value) == message
    HttpPolicy(retries=0, backoff_base_s=0)  # no retries, no waiting: fine


def test_no_providers_is_a_usage_error() -> None:
    with Fetcher(FAST) as fetcher, pytest.raises(UsageError, match="at least one --provider"):
        fetcher.fetch(DAY, [], LEGACY)


def test_a_fetcher_outside_its_with_block() -> None:
    fetcher = Fetcher(FAST)
    with pytest.raises(RuntimeError, match="outside its with-block"):
        fetcher.fetch(DAY, [parse_provider("http://127.0.0.1:9/{date:%Y%m%d}.zip")], LEGACY)


def test_httpx_loads_only_when_a_fetcher_opens() -> None:
    assert modules_loaded([["--help"], ["data", "--help"]], ("httpx", "httpx_retries")) == []
    import subprocess
    import sys

    code = (
        "import sys, quantcli.ops.http, quantcli.ops.download, quantcli.ops.providers\n"
        "print('httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
