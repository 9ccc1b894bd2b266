"""Secrets planted in a recipe URL, a config file and an environment variable never reach a
log line, an error, a manifest, a metrics file or --json output; and a refresh given the CLI
run's fetch options logs and counts every fetch attempt."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from httpserver import LEGACY_PATH, SYMBOLS, FixtureServer, legacy_zip, path_for
from prometheus_client.parser import text_string_to_metric_families

from quantcli.market import calendar
from quantcli.ops.http import HttpPolicy
from quantcli.ops.recipe import RECIPE_FILE, make_recipe, save_recipe
from quantcli.ops.refresh import refresh
from quantcli.ops.run import RUN, Run, fetch_options
from quantcli.settings import Settings, resolve_config

DAYS = calendar.sessions(date(2024, 7, 1), date(2024, 7, 5))
ENV_SECRET = "env-secret-0451"
CFG_SECRET = "cfg-secret-0452"
URL_SECRET = "url-pass-0453"
SECRETS = (ENV_SECRET, CFG_SECRET, URL_SECRET)
FAST = "[refresh]\nretries = 1\nbackoff_base = 0.001\nread_timeout = 0.5\nconnect_timeout = 0.5\n"


def mirror(server: FixtureServer, days: list[date], userinfo: str) -> str:
    for day in days:
        server.serve("/mirror" + path_for(LEGACY_PATH, day), legacy_zip(day))
    return server.url.replace("://", f"://{userinfo}@") + "/mirror" + LEGACY_PATH


def test_planted_secrets_appear_in_no_output(
    cli, store: Path, tmp_path: Path, http_server: FixtureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSE_API_TOKEN", ENV_SECRET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUANTCLI_LOGGING_FORMAT")  # the file's [logging] format applies
    metrics = tmp_path / "refresh.prom"
    (tmp_path / "quantcli.toml").write_text(
        f'{FAST}[logging]\nformat = "json"\n[metrics]\nfile = "{metrics}"\n'
        f'[site]\nmirror_password = "{CFG_SECRET}"\n'
    )
    primary = http_server.serve_sessions(DAYS[:3]) + f"?token={ENV_SECRET}"
    backup = mirror(http_server, DAYS, f"desk:{CFG_SECRET}")
    # A third provider with its password in the userinfo, never needed.
    spare = http_server.url.replace("://", f"://desk:{URL_SECRET}@") + "/spare/{date:%Y%m%d}.zip"
    outputs = []

    def run(*args: str) -> str:
        res = cli(*args)
        outputs.append(res.stdout + res.stderr)
        return res.stdout

    set_args = ["data", "recipe", "set", "d", "--source", "bhavcopy-legacy"]
    run(*set_args, "--provider", primary, "--provider", backup, "--provider", spare,
        "--start", DAYS[0].isoformat())  # fmt: skip
    run("data", "recipe", "show", "d")
    run("--json", "data", "recipe", "show", "d")
    done = json.loads(run("--json", "data", "refresh", "d", "--until", DAYS[-1].isoformat()))
    assert done["version"] == 1 and done["rows"] == len(DAYS) * len(SYMBOLS)
    run("--json", "data", "show", "d")
    run("doctor")
    # Errors quoting user input that holds a secret, in words and in --json.
    run("data", "ingest", "x", "--source", "csv", str(tmp_path / ENV_SECRET / "a.csv"))
    run("--json", "data", "ingest", "x", "--source", "csv", f"/{CFG_SECRET}/b.csv")
    run("data", "refresh", "d", "--until", "2024-07-0x")
    text = "\n".join(outputs)
    assert '"event": "dataset.published"' in text
    assert "/***/a.csv: " in text and '"message": "/***/b.csv: ' in text  # the error edge
    written = [
        p.read_text(errors="replace")
        for p in [*store.rglob("*"), metrics]
        if p.is_file() and p.name != RECIPE_FILE and p.suffix != ".parquet"
    ]
    for secret in SECRETS:
        assert secret not in text, secret
        assert all(secret not in content for content in written), secret
    # The recipe keeps the templates as given: a token is needed to fetch.
    assert ENV_SECRET in (store / "d" / RECIPE_FILE).read_text()


def test_a_refresh_run_logs_and_counts_every_attempt(
    store: Path, tmp_path: Path, http_server: FixtureServer, capsys: pytest.CaptureFixture[str]
) -> None:
    primary = http_server.serve_sessions(DAYS[:3])  # the last two are 404s at the primary
    http_server.fail(path_for(LEGACY_PATH, DAYS[1]), 500, times=1)
    backup = mirror(http_server, DAYS, "desk:pw")
    save_recipe(store, make_recipe("d", "bhavcopy-legacy", [primary, backup], start=DAYS[0]))
    (tmp_path / "quantcli.toml").write_text(FAST)
    settings = Settings(store, config=resolve_config(cwd=tmp_path, env={}))
    path = tmp_path / "r.prom"
    run = Run("data refresh", "d", store, metrics=path)
    run.begin(log_format="json", level="info")
    options = fetch_options(settings, {RUN: run})
    assert options["policy"] == HttpPolicy(
        retries=1, backoff_base_s=0.001, read_timeout_s=0.5, connect_timeout_s=0.5
    )
    assert fetch_options(Settings(store), {}) == {"policy": None, "on_attempt": None}
    refresh(store, "d", until=DAYS[-1], **options)
    assert run.finish(0) is None
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    attempts = [line for line in lines if line["event"] == "fetch.attempt"]
    assert {line["run_id"] for line in lines} == {run.run_id}
    assert len(attempts) == 3 + 1 + 2 + 2  # 3 served, one 500 retried, 2 404s, 2 from backup
    assert {a["url"].split("@")[0] for a in attempts if "mirror" in a["url"]} == {"http://***"}
    found = {
        (s.name, s.labels.get("provider")): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    label = backup.replace("desk:pw", "***")
    assert found[("quantcli_provider_successes", primary)] == 3
    assert found[("quantcli_provider_retries", primary)] == 1
    assert found[("quantcli_provider_failures", primary)] == 2
    assert found[("quantcli_provider_successes", label)] == 2
    assert found[("quantcli_job_sessions_fetched", None)] == len(DAYS)
    assert found[("quantcli_job_rows_written", None)] == len(DAYS) * len(SYMBOLS)
    assert found[("quantcli_dataset_last_bar_timestamp_seconds", None)] > 0
