"""Structured log lines: asked for with --log-format (or [logging] format), bound to the run,
redacted, silenced to warnings by --quiet, and absent by default (a failure stays one line)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from quantcli import log
from quantcli.ops.http import Attempt
from quantcli.ops.run import Run

SYN = ["data", "ingest", "syn", "--source", "synthetic", "--symbols", "2", "--days", "30"]


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_job_logs_validation_publish_and_finish_bound_to_one_run(cli) -> None:
    res = cli("--log-format", "json", *SYN)
    assert res.exit_code == 0, res.stderr
    lines = log_lines(res.stderr)
    assert [line["event"] for line in lines] == [
        "dataset.validated",
        "dataset.published",
        "command.finished",
    ]
    assert {line["run_id"] for line in lines} == {lines[0]["run_id"]}
    assert all(line["command"] == "data ingest" and line["dataset"] == "syn" for line in lines)
    validated, published, finished = lines
    assert validated["rows"] == 60 and validated["errors"] == 0
    assert published["ref"] == "syn@v1" and published["parent"] is None
    assert finished["exit_code"] == 0 and finished["rows_written"] == 60
    assert finished["level"] == "info" and finished["timestamp"].endswith("Z")
    # The result is still the only thing on stdout.
    assert "created syn@v1" in res.stdout and "{" not in res.stdout
    again = log_lines(cli("--log-format", "json", *SYN).stderr)
    assert [line["event"] for line in again] == [
        "dataset.validated",
        "dataset.unchanged",
        "command.finished",
    ]
    assert again[0]["run_id"] != lines[0]["run_id"]


def test_with_logs_off_a_failure_stays_one_line(cli, tmp_path: Path) -> None:
    res = cli("data", "ingest", "x", "--source", "csv", str(tmp_path / "nope.csv"))
    assert res.exit_code != 0
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")


def test_by_default_a_job_logs_json_off_a_terminal(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUANTCLI_LOGGING_FORMAT")
    res = cli("data", "ingest", "x", "--source", "csv", str(tmp_path / "nope.csv"))
    assert res.exit_code != 0
    error, logged = res.stderr.splitlines()  # the one error line, then the job's log line
    finished = json.loads(logged)
    assert finished["event"] == "command.finished" and finished["exit_code"] == res.exit_code
    assert error.startswith("error: ") and finished["error"] in error


def test_a_failed_job_logs_its_error_and_exit_code(cli, tmp_path: Path) -> None:
    res = cli("--log-format", "json", "data", "ingest", "x", "--source", "csv", str(tmp_path))
    (finished,) = log_lines(res.stderr)
    assert finished["event"] == "command.finished" and finished["level"] == "error"
    assert finished["exit_code"] == res.exit_code != 0
    assert finished["error"] in res.stderr.splitlines()[0]


def test_quiet_keeps_only_warnings_and_errors(cli, tmp_path: Path) -> None:
    assert log_lines(cli("--quiet", "--log-format", "json", *SYN).stderr) == []
    res = cli("-q", "--log-format", "json", "data", "ingest", "x", "--source", "csv", "/nope")
    assert [line["level"] for line in log_lines(res.stderr)] == ["error"]


def test_console_format_and_config_and_environment(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QUANTCLI_LOGGING_FORMAT")  # the file's format is under test
    res = cli("--log-format", "console", *SYN)
    assert log_lines(res.stderr) == []
    assert "command.finished" in res.stderr and "run_id=" in res.stderr
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quantcli.toml").write_text('[logging]\nformat = "json"\nlevel = "warning"\n')
    assert log_lines(cli(*SYN).stderr) == []  # level warning: no info lines
    monkeypatch.setenv("QUANTCLI_LOGGING_LEVEL", "info")
    assert [line["event"] for line in log_lines(cli(*SYN).stderr)][-1] == "command.finished"
    # auto is JSON off a terminal (the runner's stderr is not one).
    assert log_lines(cli("--log-format", "auto", *SYN).stderr)


def test_non_job_commands_log_nothing(cli) -> None:
    cli(*SYN)
    res = cli("--log-format", "json", "data", "list")
    assert res.exit_code == 0 and res.stderr == ""


def test_bad_format_is_one_usage_line(cli) -> None:
    res = cli("--log-format", "xml", *SYN)
    assert res.exit_code == 2
    formats = "json, console, auto, off"
    assert res.stderr == f"error: --log-format must be one of {formats}, got 'xml'\n"


def attempt(outcome: str, provider: str = "nse", **kw: Any) -> Attempt:
    fields: dict[str, Any] = {
        "provider": provider,
        "url": f"https://{provider}.example/cm02JAN2024bhav.csv.zip?token=***",
        "status": 200 if outcome == "ok" else 503,
        "bytes": 1234 if outcome == "ok" else 0,
        "latency_s": 0.0123456789,
        "attempt": 1,
        "outcome": outcome,
        "day": date(2024, 1, 2),
        "detail": "" if outcome == "ok" else "HTTP 503",
    }
    fields.update(kw)
    return Attempt(**fields)


def test_attempts_are_logged_with_the_run_context(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run("data refresh", "eq", store)
    run.begin(log_format="json", level="info")
    try:
        run.on_attempt(attempt("retry", detail="HTTP 503 Bearer leaked-token-1"))
        run.on_attempt(attempt("ok"))
    finally:
        run.finish(0)
    lines = log_lines(capsys.readouterr().err)
    retry, ok, finished = lines
    assert retry["event"] == ok["event"] == "fetch.attempt"
    assert retry["level"] == "warning" and ok["level"] == "info"
    assert retry["detail"] == "HTTP 503 Bearer ***"
    assert ok == {
        "event": "fetch.attempt",
        "level": "info",
        "timestamp": ok["timestamp"],
        "run_id": run.run_id,
        "command": "data refresh",
        "dataset": "eq",
        "provider": "nse",
        "url": "https://nse.example/cm02JAN2024bhav.csv.zip?token=***",
        "session": "2024-01-02",
        "status": 200,
        "bytes": 1234,
        "latency_s": 0.012346,
        "attempt": 1,
        "outcome": "ok",
        "detail": None,
    }
    assert finished["sessions_fetched"] == 1
    # The run is over: a library caller's own lines carry none of its context.
    log.logger().info("after")
    (after,) = log_lines(capsys.readouterr().err)
    assert "run_id" not in after


def test_attempts_are_not_logged_with_logs_off(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run("data refresh", "eq", store)
    run.begin(log_format="off", level="info")
    run.on_attempt(attempt("ok"))
    run.finish(0)
    assert capsys.readouterr().err == ""
    assert run.providers["nse"].successes == 1


def test_reading_commands_and_help_load_neither_structlog_nor_prometheus(store: Path) -> None:
    from startup import modules_loaded

    root = ["--root", str(store), "--log-format", "json"]
    invocations = [["--help"], ["data", "--help"], [*root, "data", "list"]]
    assert modules_loaded(invocations, ("structlog", "prometheus_client", "httpx")) == []
