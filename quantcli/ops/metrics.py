"""Prometheus textfile metrics of one cron job run, for node_exporter's textfile collector.

The file is written with prometheus_client's ``write_to_textfile`` (a temp file beside it,
then a rename: the collector never reads half a file). Everything is a gauge holding the last
run's value or a Unix timestamp (never an age, which would be stale the moment it is
written), and every series is exported even when it is zero, so an alert on a counter that
has not happened yet still has a series to evaluate.

``quantcli_job_last_success_timestamp_seconds`` is the metric that catches a job that silently
stopped: a failed run copies it from the previous file (0 when there never was a success), so
``time() - quantcli_job_last_success_timestamp_seconds`` keeps growing until a run succeeds.
A file shared by several jobs (one ``--metrics-file`` for all of them) keeps the other jobs'
series; two jobs finishing at the same instant can still lose one update, so one file per job
(``[metrics] dir``) is the safe set-up. prometheus_client is imported only when a file is
written.
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


_JOB: Final = ("job", "dataset")
_PROVIDER: Final = ("job", "dataset", "provider")
# Every series a run writes: name -> (help text, label names).
METRICS: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    LAST_SUCCESS: ("When this job last finished with exit code 0 (0: never).", _JOB),
    f"{PREFIX}job_last_run_timestamp_seconds": ("When this job last finished.", _JOB),
    f"{PREFIX}job_duration_seconds": ("How long the last run took.", _JOB),
    f"{PREFIX}job_exit_code": ("The last run's exit code (see docs/operations.md).", _JOB),
    f"{PREFIX}job_sessions_fetched": ("Sessions the last run fetched.", _JOB),
    f"{PREFIX}job_rows_written": ("Rows the last run added to the dataset.", _JOB),
    f"{PREFIX}provider_attempts": ("Requests made to the provider in the last run.", _PROVIDER),
    f"{PREFIX}provider_successes": ("Requests that delivered a good file.", _PROVIDER),
    f"{PREFIX}provider_retries": ("Requests that failed and were retried.", _PROVIDER),
    f"{PREFIX}provider_failures": ("Sessions the provider failed to deliver.", _PROVIDER),
    f"{PREFIX}dataset_last_bar_timestamp_seconds": (
        "The time of the dataset's latest bar.",
        ("dataset",),
    ),
}
Series = dict[str, dict[tuple[str, ...], float]]


def read_series(path: Path) -> Series:
    """The quantcli series in the metrics file at ``path`` (name -> label values -> value);
    empty when there is no file or one node_exporter could not have read either."""
    from prometheus_client.parser import text_string_to_metric_families

    found: Series = {name: {} for name in METRICS}
    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in METRICS:
                    names = METRICS[sample.name][1]
                    values = tuple(sample.labels.get(n, "") for n in names)
                    found[sample.name][values] = float(sample.value)
    except (OSError, UnicodeDecodeError, ValueError):
        return {name: {} for name in METRICS}
    return found


def _series(previous: Series, outcome: JobOutcome) -> Series:
    """The previous file's series with this run's job replaced by ``outcome``'s: other jobs
    and datasets sharing the file keep theirs."""
    key = (outcome.job, outcome.dataset)
    series: Series = {
        name: {v: x for v, x in values.items() if len(v) == 1 or v[:2] != key}
        for name, values in previous.items()
    }
    success = previous[LAST_SUCCESS].get(key, 0.0)
    job = {
        LAST_SUCCESS: outcome.finished if outcome.exit_code == 0 else success,
        f"{PREFIX}job_last_run_timestamp_seconds": outcome.finished,
        f"{PREFIX}job_duration_seconds": max(0.0, outcome.finished - outcome.started),
        f"{PREFIX}job_exit_code": float(outcome.exit_code),
        f"{PREFIX}job_sessions_fetched": float(outcome.sessions_fetched),
        f"{PREFIX}job_rows_written": float(outcome.rows_written),
    }
    for name, value in job.items():
        series[name][key] = value
    for label, counts in outcome.providers.items():
        for field_name in ("attempts", "successes", "retries", "failures"):
            series[f"{PREFIX}provider_{field_name}"][(*key, label)] = float(
                getattr(counts, field_name)
            )
    if outcome.last_bar is not None:
        last_bar = f"{PREFIX}dataset_last_bar_timestamp_seconds"
        series[last_bar][(outcome.dataset,)] = outcome.last_bar.timestamp()
    return series


def write_metrics(path: Path, outcome: JobOutcome) -> None:
    """Write ``outcome``'s metrics to ``path`` (a ``*.prom`` file) atomically, keeping the
    series of other jobs and datasets the file already holds."""
    from prometheus_client import CollectorRegistry, write_to_textfile
    from prometheus_client.core import GaugeMetricFamily

    series = _series(read_series(path), outcome)
    families = []
    for name, (doc, labels) in METRICS.items():
        family = GaugeMetricFamily(name, doc, labels=list(labels))
        for values, value in sorted(series[name].items()):
            family.add_metric(list(values), value)
        families.append(family)

    class _Families:
        def collect(self) -> list[GaugeMetricFamily]:
            return families

    registry = CollectorRegistry()
    registry.register(_Families())
    write_to_textfile(str(path), registry)
