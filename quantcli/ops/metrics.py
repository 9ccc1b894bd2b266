"""Prometheus textfile metrics of one cron job run, for node_exporter's textfile collector.

The file is written with prometheus_client's ``write_to_textfile`` (a temp file beside it,
then a rename: the collector never reads half a file). Everything is a gauge holding the last
run's value or a Unix timestamp (never an age, which would be stale the moment it is
written), and every series is exported even when it is zero, so an alert on a counter that
has not happened yet still has a series to evaluate.

``quantcli_job_last_success_timestamp_seconds`` is the metric that catches a job that silently
stopped: a failed run copies it from the previous file (0 when there never was a success), so
``time() - quantcli_job_last_success_timestamp_seconds`` keeps growing until a run succeeds.
prometheus_client is imported only when a file is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

PREFIX: Final = "quantcli_"
LAST_SUCCESS: Final = "quantcli_job_last_success_timestamp_seconds"
# Attempt outcomes (quantcli.ops.http.Outcome) that end a provider's try at a session.
FAILED_OUTCOMES: Final = frozenset({"failed", "not_found", "bad_download", "wrong_session"})


@dataclass
class ProviderCounts:
    """One provider's requests in this run: all of them, those that delivered a good file,
    those retried, and those that ended its try at a session without one."""

    attempts: int = 0
    successes: int = 0
    retries: int = 0
    failures: int = 0

    def count(self, outcome: str) -> None:
        """Count one attempt with ``outcome`` (an Attempt's)."""
        self.attempts += 1
        if outcome == "ok":
            self.successes += 1
        elif outcome == "retry":
            self.retries += 1
        elif outcome in FAILED_OUTCOMES:
            self.failures += 1


@dataclass(frozen=True)
class JobOutcome:
    """What one run of ``job`` on ``dataset`` ("" when it has none) did; times are Unix
    seconds. ``last_bar`` is the dataset's latest bar after the run (None: no such dataset)."""

    job: str
    dataset: str
    started: float
    finished: float
    exit_code: int
    sessions_fetched: int = 0
    rows_written: int = 0
    providers: Mapping[str, ProviderCounts] = field(default_factory=dict)
    last_bar: datetime | None = None


def previous_success(path: Path, job: str, dataset: str) -> float:
    """The last success timestamp of ``job`` on ``dataset`` in the metrics file at ``path``
    (0 when the file, the series or a readable file is missing)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == LAST_SUCCESS
                    and labels.get("job") == job
                    and labels.get("dataset") == dataset
                ):
                    return float(sample.value)
    except (OSError, UnicodeDecodeError, ValueError):
        pass  # no previous file, or one node_exporter could not have read either
    return 0.0


def write_metrics(path: Path, outcome: JobOutcome) -> None:
    """Write ``outcome``'s metrics to ``path`` (a ``*.prom`` file) atomically."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    job_labels = ("job", "dataset")
    key = (outcome.job, outcome.dataset)

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(f"{PREFIX}{name}", doc, job_labels, registry=registry).labels(*key).set(value)

    success = (
        outcome.finished
        if outcome.exit_code == 0
        else previous_success(path, outcome.job, outcome.dataset)
    )
    gauge(
        "job_last_success_timestamp_seconds",
        "When this job last finished with exit code 0 (0: never).",
        success,
    )
    gauge("job_last_run_timestamp_seconds", "When this job last finished.", outcome.finished)
    gauge(
        "job_duration_seconds",
        "How long the last run took.",
        max(0.0, outcome.finished - outcome.started),
    )
    gauge("job_exit_code", "The last run's exit code (see docs/operations.md).", outcome.exit_code)
    gauge("job_sessions_fetched", "Sessions the last run fetched.", outcome.sessions_fetched)
    gauge("job_rows_written", "Rows the last run added to the dataset.", outcome.rows_written)
    provider_labels = (*job_labels, "provider")
    per_provider = {
        "attempts": "Requests made to the provider in the last run.",
        "successes": "Requests that delivered a good file in the last run.",
        "retries": "Requests that failed and were retried in the last run.",
        "failures": "Sessions the provider failed to deliver in the last run.",
    }
    for name, doc in per_provider.items():
        provider_gauge = Gauge(f"{PREFIX}provider_{name}", doc, provider_labels, registry=registry)
        for label, counts in sorted(outcome.providers.items()):
            provider_gauge.labels(*key, label).set(getattr(counts, name))
    if outcome.last_bar is not None:
        Gauge(
            f"{PREFIX}dataset_last_bar_timestamp_seconds",
            "The time of the dataset's latest bar.",
            ("dataset",),
            registry=registry,
        ).labels(outcome.dataset).set(outcome.last_bar.timestamp())
    write_to_textfile(str(path), registry)
