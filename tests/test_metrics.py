"""Textfile metrics of a job run, read back with prometheus_client's own parser."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantcli.ops.http import Attempt
from quantcli.ops.metrics import JobOutcome, ProviderCounts, write_metrics
from quantcli.ops.run import Run
from quantcli.store.reader import open_dataset

SYN = ["data", "ingest", "syn", "--source", "synthetic", "--symbols", "2", "--days", "30"]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(path: Path) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge"
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def job(found: Samples, series: str, dataset: str = "syn", job_name: str = "data ingest") -> float:
    return found[(f"quantcli_{series}", (("dataset", dataset), ("job", job_name)))]


def test_ingest_writes_job_metrics_and_a_failure_keeps_the_last_success(
    cli, store: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ingest.prom"
    before = time.time()
    ok = cli("--metrics-file", str(path), *SYN)
    assert ok.exit_code == 0, ok.stderr
    ok_found = samples(path)
    success = job(ok_found, "job_last_success_timestamp_seconds")
    assert before <= success <= time.time()
    assert job(ok_found, "job_last_run_timestamp_seconds") == success
    assert job(ok_found, "job_exit_code") == 0
    assert 0 < job(ok_found, "job_duration_seconds") < 60
    assert job(ok_found, "job_rows_written") == 60
    assert job(ok_found, "job_sessions_fetched") == 0  # exported although nothing was fetched
    last_bar = ok_found[("quantcli_dataset_last_bar_timestamp_seconds", (("dataset", "syn"),))]
    assert last_bar == open_dataset("syn", store).manifest.last_ts.timestamp()  # not an age
    assert not list(tmp_path.glob("ingest.prom.*"))  # the temp file was renamed away

    bad = cli("--metrics-file", str(path), "data", "ingest", "syn", "--source", "csv", "/nope")
    assert bad.exit_code != 0
    bad_found = samples(path)
    assert job(bad_found, "job_last_success_timestamp_seconds") == success
    assert job(bad_found, "job_last_run_timestamp_seconds") > success
    assert job(bad_found, "job_exit_code") == bad.exit_code
    assert job(bad_found, "job_rows_written") == 0

    again = cli("--metrics-file", str(path), *SYN)  # unchanged: nothing written, a success
    again_found = samples(path)
    assert again.exit_code == 0
    assert job(again_found, "job_rows_written") == 0
    assert job(again_found, "job_last_success_timestamp_seconds") > success


def test_a_first_run_that_fails_exports_zero_success(cli, tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    res = cli("--metrics-file", str(path), "data", "ingest", "x", "--source", "csv", "/nope")
    first_found = samples(path)
    assert res.exit_code != 0
    assert job(first_found, "job_last_success_timestamp_seconds", dataset="x") == 0
    assert ("quantcli_dataset_last_bar_timestamp_seconds", (("dataset", "x"),)) not in (first_found)


def test_backtest_and_metrics_dir_from_config(
    cli, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli(*SYN)
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quantcli.toml").write_text(f'[metrics]\ndir = "{textfile}"\n')
    res = cli("backtest", "--dataset", "syn@v1", "--strategy", "buy_and_hold")
    assert res.exit_code == 0, res.stderr
    path = textfile / "quantcli_backtest_syn.prom"
    bt_found = samples(path)
    assert job(bt_found, "job_exit_code", job_name="backtest") == 0
    # Reading commands never write metrics, even with [metrics] configured.
    assert cli("data", "list").exit_code == 0
    assert sorted(p.name for p in textfile.iterdir()) == ["quantcli_backtest_syn.prom"]


def test_metrics_file_mistakes_are_one_usage_line(cli, tmp_path: Path) -> None:
    res = cli("--metrics-file", str(tmp_path / "m.txt"), *SYN)
    assert res.exit_code == 2 and "--metrics-file must end in .prom" in res.stderr
    res = cli("--metrics-file", str(tmp_path / "no" / "m.prom"), *SYN)
    assert res.exit_code == 2 and "the directory" in res.stderr and "does not exist" in res.stderr
    res = cli("--metrics-file", str(tmp_path / "m.prom"), "data", "list")
    assert res.exit_code == 2 and "--metrics-file applies to backtest" in res.stderr
    assert not (tmp_path / "m.prom").exists()


def test_an_unwritable_metrics_file_fails_the_job_in_one_line(cli, tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.mkdir()  # a directory where the file should be: the rename fails
    res = cli("--metrics-file", str(path), *SYN)
    assert res.exit_code == 1
    assert res.stderr.splitlines()[-1].startswith(f"error: {path}: cannot write the metrics file")


def test_provider_counts_come_from_the_attempts(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "refresh.prom"
    run = Run("data refresh", "eq", store, metrics=path)
    run.begin(log_format="off", level="info")
    run.expect_providers(["mirror", "nse"])

    def attempt(provider: str, outcome: str, n: int) -> Attempt:
        return Attempt(provider, "u", 200, 0, 0.1, n, outcome, date(2024, 1, 2))  # type: ignore[arg-type]

    for a in [
        attempt("nse", "retry", 1),
        attempt("nse", "retry", 2),
        attempt("nse", "failed", 3),
        attempt("mirror", "ok", 1),
        attempt("nse", "not_found", 1),
        attempt("mirror", "wrong_session", 1),
    ]:
        run.on_attempt(a)
    assert run.finish(69) is None
    found = samples(path)

    def provider(series: str, label: str) -> float:
        labels = (("dataset", "eq"), ("job", "data refresh"), ("provider", label))
        return found[(f"quantcli_provider_{series}", labels)]

    assert [provider(s, "nse") for s in ("attempts", "successes", "retries", "failures")] == [
        4,
        0,
        2,
        2,
    ]
    assert [provider(s, "mirror") for s in ("attempts", "successes", "retries", "failures")] == [
        2,
        1,
        0,
        1,
    ]
    key = ("quantcli_job_sessions_fetched", (("dataset", "eq"), ("job", "data refresh")))
    assert found[key] == 1


def test_zero_providers_are_exported_as_zeros(tmp_path: Path) -> None:
    path = tmp_path / "z.prom"
    outcome = JobOutcome("data refresh", "eq", 1.0, 2.0, 0, providers={"nse": ProviderCounts()})
    write_metrics(path, outcome)
    text = path.read_text()
    for series in ("attempts", "successes", "retries", "failures"):
        assert (
            f'quantcli_provider_{series}{{dataset="eq",job="data refresh",provider="nse"}} 0.0'
            in text
        )


def test_model_train_is_a_job_named_by_its_model(cli, store: Path, tmp_path: Path) -> None:
    from test_models import published_feature_set
    from test_models_cli import TRAIN

    published_feature_set(store)
    path = tmp_path / "train.prom"
    res = cli("--metrics-file", str(path), "--log-format", "json", *TRAIN)
    assert res.exit_code == 0, res.stderr
    found = samples(path)
    assert job(found, "job_exit_code", dataset="m", job_name="model train") == 0
    # A model is not a dataset: no rows written, no last bar.
    assert job(found, "job_rows_written", dataset="m", job_name="model train") == 0
    assert not [name for name, _ in found if name.startswith("quantcli_dataset_")]
    events = [line.split('"event": "')[1].split('"')[0] for line in res.stderr.splitlines()
              if line.startswith("{")]  # fmt: skip
    assert events[-2:] == ["model.published", "command.finished"]


def test_help_is_not_a_run(cli, tmp_path: Path) -> None:
    res = cli("--metrics-file", str(tmp_path / "m.prom"), "data", "refresh", "--help")
    assert res.exit_code == 0 and "Usage" in res.stdout
    assert not (tmp_path / "m.prom").exists()


def test_jobs_sharing_a_file_keep_each_others_series(tmp_path: Path) -> None:
    path = tmp_path / "shared.prom"
    write_metrics(
        path,
        JobOutcome("data refresh", "eq", 10.0, 12.0, 0, providers={"nse": ProviderCounts(1, 1)}),
    )
    write_metrics(path, JobOutcome("backtest", "eq", 20.0, 25.0, 0))
    write_metrics(path, JobOutcome("data refresh", "eq", 30.0, 31.0, 69))
    found = samples(path)
    assert job(found, "job_last_success_timestamp_seconds", "eq", "data refresh") == 12.0
    assert job(found, "job_last_run_timestamp_seconds", "eq", "data refresh") == 31.0
    assert job(found, "job_exit_code", "eq", "data refresh") == 69
    assert job(found, "job_last_success_timestamp_seconds", "eq", "backtest") == 25.0
    # This run's providers replace the last run's: nse was not asked this time.
    assert not [labels for name, labels in found if name.startswith("quantcli_provider_")]
    path.write_text("not a metrics file {\n")
    write_metrics(path, JobOutcome("backtest", "eq", 1.0, 2.0, 1))
    assert job(samples(path), "job_last_success_timestamp_seconds", "eq", "backtest") == 0


def test_a_dry_run_is_not_a_run_of_the_job(cli, tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    provider = "https://h.example/{date:%Y%m%d}.zip"
    args = ["data", "recipe", "set", "d", "--source", "bhavcopy-legacy", "--provider", provider]
    assert cli(*args, "--start", "2024-07-01").exit_code == 0
    res = cli("--metrics-file", str(path), "--log-format", "json", "data", "refresh", "d",
              "--until", "2024-07-05", "--dry-run")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "2024-07-05" in res.stdout and "{" not in res.stderr
    assert not path.exists()
