"""`data refresh` against the loopback HTTP server: retries and fall-through recorded in the
manifest and the provider matrix, prefix-publish on 69 and 65, both layouts, redaction."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from httpserver import LEGACY_PATH, SYMBOLS, FixtureServer, legacy_zip, path_for, udiff_zip

from quantcli.errors import DataError, UnavailableError
from quantcli.market import calendar
from quantcli.ops.http import HttpPolicy
from quantcli.ops.recipe import make_recipe, save_recipe
from quantcli.ops.refresh import refresh
from quantcli.store.reader import open_dataset

DAYS = calendar.sessions(date(2024, 7, 1), date(2024, 7, 12))  # ten sessions
UNTIL = DAYS[-1]
FAST = HttpPolicy(
    read_timeout_s=0.5, connect_timeout_s=0.5, backoff_base_s=0.001, retries=2, concurrency=3
)


def recipe(store: Path, *templates: str, source: str = "bhavcopy-legacy") -> None:
    save_recipe(store, make_recipe("d", source, list(templates), start=DAYS[0]))


def mirror(server: FixtureServer, days: list[date]) -> str:
    """The same files under /mirror; the mirror's template."""
    for day in days:
        server.serve("/mirror" + path_for(LEGACY_PATH, day), legacy_zip(day))
    return server.url + "/mirror" + LEGACY_PATH


def test_retries_and_fallback_are_recorded(http_server: FixtureServer, store: Path) -> None:
    primary = http_server.serve_sessions(DAYS[:8])  # the last two are 404 at the primary
    backup = mirror(http_server, DAYS)
    http_server.fail(path_for(LEGACY_PATH, DAYS[1]), 500, times=2)
    http_server.throttle(path_for(LEGACY_PATH, DAYS[2]), retry_after_s=0)
    recipe(store, primary, backup)
    seen = []
    report = refresh(store, "d", until=UNTIL, policy=FAST, on_attempt=seen.append)
    assert report.version == 1 and report.rows == len(DAYS) * len(SYMBOLS)
    assert [report.served[d] for d in DAYS] == [primary] * 8 + [backup] * 2
    assert http_server.peak_in_flight <= FAST.concurrency
    manifest = open_dataset("d", store).manifest
    served = manifest.notes["refresh"]["served"]  # type: ignore[index]
    assert served == {d.isoformat(): (primary if d in DAYS[:8] else backup) for d in DAYS}
    first = report.matrix[primary].to_dict()
    # 8 files served; 2 retried 500s and a 429; the two sessions it does not have.
    assert (first["successes"], first["failures"], first["sessions_served"]) == (8, 5, 8)
    assert first["attempts"] == len([a for a in seen if a.provider == primary]) == 13
    assert first["retries"] == 3 and first["last_failure"].endswith("not_found (HTTP 404)")
    assert report.this_run[primary].to_dict() == first
    second = report.matrix[backup].to_dict()
    assert (second["attempts"], second["successes"], second["sessions_served"]) == (2, 2, 2)
    assert first["latency_s_mean"] > 0
    # The matrix accumulates across runs and is kept beside the recipe.
    stored = json.loads((store / "d" / "providers.json").read_text())
    assert stored[primary]["sessions_served"] == 8
    later = http_server.serve_sessions([date(2024, 7, 15)])
    assert later == primary
    again = refresh(store, "d", until=date(2024, 7, 15), policy=FAST)
    assert again.this_run[primary].sessions_served == 1
    assert again.matrix[primary].sessions_served == 9 and again.matrix[primary].attempts == 14


def test_a_redirect_is_counted_apart_from_failures(http_server: FixtureServer, store: Path) -> None:
    http_server.serve_sessions(DAYS)
    for day in DAYS:  # the provider's files have moved; each old path answers 302
        http_server.redirect(path_for("/moved" + LEGACY_PATH, day), path_for(LEGACY_PATH, day))
    template = http_server.url + "/moved" + LEGACY_PATH
    recipe(store, template)
    report = refresh(store, "d", until=UNTIL, policy=FAST)
    stats = report.matrix[template].to_dict()
    assert (stats["redirects"], stats["failures"], stats["successes"]) == (len(DAYS), 0, len(DAYS))
    assert stats["last_failure"] is None


def test_the_cli_refresh_logs_counts_and_takes_refresh_config(
    cli, http_server: FixtureServer, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = http_server.serve_sessions(DAYS)
    http_server.fail(path_for(LEGACY_PATH, DAYS[3]), 500, times=1)
    recipe(store, template)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quantcli.toml").write_text("[refresh]\nbackoff_base = 0.001\nretries = 0\n")
    prom = tmp_path / "refresh.prom"
    args = ["--log-format", "json", "--metrics-file", str(prom)]
    res = cli(*args, "data", "refresh", "d", "--until", UNTIL.isoformat())
    # [refresh] retries = 0 reaches the fetcher: the one 500 is not retried, the session fails.
    assert res.exit_code == 69, res.stderr
    events = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    attempts = [e for e in events if e["event"] == "fetch.attempt"]
    assert {e["status"] for e in attempts} >= {200, 500} and attempts[0]["run_id"]
    text = prom.read_text()
    labels = f'dataset="d",job="data refresh",provider="{template}"'
    assert f"quantcli_provider_failures{{{labels}}} 1.0" in text
    # The prefix before the failed session is published (how many later ones were fetched
    # alongside depends on the concurrent fetches' timing).
    rows = 3 * len(SYMBOLS)
    assert f'quantcli_job_rows_written{{dataset="d",job="data refresh"}} {rows}.0' in text


def test_providers_unavailable_publishes_the_prefix(
    http_server: FixtureServer, store: Path
) -> None:
    template = http_server.serve_sessions(DAYS)
    http_server.fail(path_for(LEGACY_PATH, DAYS[6]), 503, times=None)
    recipe(store, template)
    with pytest.raises(UnavailableError) as caught:
        refresh(store, "d", until=UNTIL, policy=FAST)
    error = caught.value
    assert error.exit_code == 69
    assert f"{DAYS[6]}: no provider delivered the session" in error.message
    assert f"published d@v1 with the 6 session(s) through {DAYS[5]}" in error.message
    assert isinstance(error.result, dict) and error.result["version"] == 1
    assert open_dataset("d", store).manifest.last_ts.date() == DAYS[5]
    assert error.result["provider_matrix"][template]["failures"] == 3  # the first try, 2 retries
    # The provider recovers: the next run fetches exactly the four sessions left.
    fixed = FixtureServer()
    with fixed:
        again = fixed.serve_sessions(DAYS)
        recipe(store, again)
        report = refresh(store, "d", until=UNTIL, policy=FAST)
        assert report.plan.sessions == tuple(DAYS[6:])
        assert fixed.hits(path_for(LEGACY_PATH, DAYS[5])) == 0
    assert report.version == 2 and open_dataset("d", store).manifest.parent == 1
    frame = open_dataset("d", store).frame()
    assert frame.height == frame.unique(["symbol", "ts"]).height == len(DAYS) * len(SYMBOLS)


def test_truncated_everywhere_is_bad_data(http_server: FixtureServer, store: Path) -> None:
    template = http_server.serve_sessions(DAYS[:3])
    backup = mirror(http_server, DAYS[:3])
    http_server.truncate(path_for(LEGACY_PATH, DAYS[0]))
    http_server.truncate("/mirror" + path_for(LEGACY_PATH, DAYS[0]))
    recipe(store, template, backup)
    with pytest.raises(DataError) as caught:
        refresh(store, "d", until=DAYS[2], policy=FAST)
    assert caught.value.exit_code == 65
    assert "nothing published" in caught.value.message
    assert not (store / "d" / "v1").exists()


def test_wrong_layout_is_refused_and_udiff_recipes_work(
    http_server: FixtureServer, store: Path
) -> None:
    udiff = http_server.serve_sessions(DAYS[:2], "udiff")
    # A provider that switched layouts under a legacy recipe: refused, never ingested.
    http_server.serve("/switched" + path_for(LEGACY_PATH, DAYS[0]), udiff_zip(DAYS[0]))
    recipe(store, http_server.url + "/switched" + LEGACY_PATH)
    with pytest.raises(DataError, match="the layout changed"):
        refresh(store, "d", until=DAYS[1], policy=FAST)
    recipe(store, udiff, source="bhavcopy-udiff")
    report = refresh(store, "d", until=DAYS[1], policy=FAST)
    assert report.version == 1 and report.rows == 2 * len(SYMBOLS)


def test_secrets_stay_out_of_everything_written(
    http_server: FixtureServer, store: Path, cli
) -> None:
    template = http_server.serve_sessions(DAYS[:2]) + "?token=s3cret"
    user = template.replace("http://", "http://bob:hunter2@")
    http_server.fail(path_for(LEGACY_PATH, DAYS[0]), 404, times=1)
    res = cli(
        "--json", "data", "recipe", "set", "d", "--source", "bhavcopy-legacy",
        "--provider", user, "--provider", template, "--start", DAYS[0].isoformat(),
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = cli("--json", "data", "refresh", "d", "--until", DAYS[1].isoformat())
    assert out.exit_code == 0, out.stderr
    written = [
        out.stdout,
        out.stderr,
        res.stdout,
        (store / "d" / "providers.json").read_text(),
        (store / "d" / "v1" / "manifest.json").read_text(),
        cli("data", "show", "d").stdout,
        cli("data", "recipe", "show", "d").stdout,
    ]
    for text in written:
        assert "s3cret" not in text and "hunter2" not in text
    assert "token=***" in out.stdout


def test_cli_exit_69_when_no_provider_has_the_file(
    http_server: FixtureServer, store: Path, cli
) -> None:
    template = http_server.serve_sessions(DAYS[:2])
    recipe(store, template)
    res = cli("--json", "data", "refresh", "d", "--until", DAYS[3].isoformat())
    assert res.exit_code == 69, res.stderr
    doc = res.json()
    assert doc["error"]["exit_code"] == 69 and doc["version"] == 1
    assert list(doc["published"]) == [d.isoformat() for d in DAYS[:2]]
    assert [line for line in res.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {doc['error']['message']}"
    ]
