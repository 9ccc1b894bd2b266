"""One command run as cron sees it: its id, log context, attempt counts, and at the end its
``command.finished`` line and textfile metrics.

The CLI starts a :class:`Run` for every command (quantcli/cli.py) and finishes it with the
exit code at its error edge. A command that fetches passes :meth:`Run.on_attempt` to the
fetcher (``Fetcher(on_attempt=...)`` or ``refresh(on_attempt=...)``): each attempt is logged
and counted per provider. :func:`fetch_options` gives ``refresh`` both that observer and the
fetch policy from ``[refresh]``. What the run wrote is read back from
the store when it ends (the dataset's latest version against the one it started from), so
commands report nothing themselves.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quantcli import log
from quantcli.errors import QuantcliError
from quantcli.ops.metrics import JobOutcome, ProviderCounts, write_metrics

if TYPE_CHECKING:
    from quantcli.ops.http import Attempt
    from quantcli.settings import Settings

RUN: Final = "quantcli.run"  # the click context's meta key holding the command's Run
# The commands that are cron jobs: they log their work and may write metrics.
JOBS: Final = frozenset({"data ingest", "data refresh", "model train", "backtest"})
# The jobs whose dataset is a store dataset (model train's is a model name): their rows written
# and the dataset's last bar are read from the store.
DATASET_JOBS: Final = frozenset({"data ingest", "data refresh", "backtest"})


def new_run_id() -> str:
    """A short random id naming one run in every log line it writes."""
    return secrets.token_hex(8)


def _dataset_name(dataset: str | None) -> str:
    """The dataset a reference names (``nse@v3`` -> ``nse``)."""
    return (dataset or "").split("@", 1)[0]


@dataclass(frozen=True)
class _Version:
    number: int
    rows: int
    last_bar: datetime


def _latest(root: Path, name: str) -> _Version | None:
    from quantcli.store.manifest import NAME_RE, read_manifest, version_dir, version_numbers

    if not NAME_RE.match(name) or not (root / name).is_dir():
        return None
    versions = version_numbers(root, name)
    if not versions:
        return None
    manifest = read_manifest(version_dir(root, name, versions[-1]))
    return _Version(manifest.version, manifest.rows, manifest.last_ts)


def _recipe_labels(root: Path, name: str) -> list[str]:
    """The providers of ``name``'s recipe, by label ([] without a readable recipe)."""
    from quantcli.ops.recipe import load_recipe

    try:
        return [p.label for p in load_recipe(root, name).providers]
    except QuantcliError:
        return []


@dataclass
class Run:
    """The run of ``command`` (``data refresh``) on ``dataset`` in the store at ``root``;
    ``metrics`` is the textfile to write at the end (None: no metrics); ``dry_run`` when the
    command was given ``--dry-run``."""

    command: str
    dataset: str | None
    root: Path
    metrics: Path | None = None
    dry_run: bool = False
    run_id: str = field(default_factory=new_run_id)
    started: float = field(default_factory=time.time)
    providers: dict[str, ProviderCounts] = field(default_factory=dict)
    _before: _Version | None = None
    _events: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def is_job(self) -> bool:
        """Whether the command is a cron job (logs its work, may write metrics); a dry run
        is not: it must not count as the job's success."""
        return self.command in JOBS and not self.dry_run

    @property
    def _on_dataset(self) -> bool:
        return self.is_job and self.command in DATASET_JOBS and bool(_dataset_name(self.dataset))

    def begin(self, *, log_format: log.LogFormat, level: str) -> None:
        """Bind this run's context to every log line and note where the dataset stands; a
        job logs its events unless ``log_format`` is ``off``."""
        self._events = self.is_job and log_format != "off"
        log.start_run(
            log_format=log_format,
            level=level,
            events=self._events,
            run_id=self.run_id,
            command=self.command,
            dataset=self.dataset,
        )
        if self._on_dataset:
            self._before = _latest(self.root, _dataset_name(self.dataset))

    def expect_providers(self, labels: list[str]) -> None:
        """Export zeros for these providers even if the run never calls them (a refresh's
        recipe providers are expected when it finishes)."""
        with self._lock:
            for label in labels:
                self.providers.setdefault(label, ProviderCounts())

    def on_attempt(self, attempt: Attempt) -> None:
        """The fetcher's observer: log the attempt and count it for its provider."""
        log.log_attempt(attempt)
        with self._lock:
            self.providers.setdefault(attempt.provider, ProviderCounts()).count(attempt.outcome)

    def finish(self, exit_code: int, error: QuantcliError | None = None) -> QuantcliError | None:
        """Log the ``command.finished`` line (a job logging events) and write the metrics;
        returns the error of a metrics file that could not be written, else None."""
        finished = time.time()
        name = _dataset_name(self.dataset)
        after = _latest(self.root, name) if self._on_dataset else None
        rows = 0
        if after is not None and (self._before is None or after.number > self._before.number):
            rows = after.rows - (self._before.rows if self._before is not None else 0)
        if self.command == "data refresh" and name:
            self.expect_providers(_recipe_labels(self.root, name))
        with self._lock:
            providers = {k: ProviderCounts(**vars(v)) for k, v in self.providers.items()}
        fetched = sum(c.successes for c in providers.values())
        if self._events:
            line = log.logger().info if exit_code == 0 else log.logger().error
            line(
                "command.finished",
                exit_code=exit_code,
                duration_s=round(finished - self.started, 3),
                sessions_fetched=fetched,
                rows_written=rows,
                error=None if error is None else error.message,
            )
        problem = None
        if self.metrics is not None:
            outcome = JobOutcome(
                job=self.command,
                dataset=name,
                started=self.started,
                finished=finished,
                exit_code=exit_code,
                sessions_fetched=fetched,
                rows_written=max(rows, 0),
                providers=providers,
                last_bar=None if after is None else after.last_bar,
            )
            try:
                write_metrics(self.metrics, outcome)
            except OSError as exc:
                problem = QuantcliError(
                    f"cannot write the metrics file: {exc.strerror or exc} "
                    "(check --metrics-file or [metrics] in quantcli.toml)",
                    path=str(self.metrics),
                )
        log.end_run()
        return problem


def run_of(meta: Mapping[str, object]) -> Run | None:
    """The Run the CLI started for this command (``ctx.meta``), None outside the CLI."""
    run = meta.get(RUN)
    return run if isinstance(run, Run) else None


def fetch_options(settings: Settings, meta: Mapping[str, object]) -> dict[str, Any]:
    """Keyword arguments for ``quantcli.ops.refresh.refresh`` from a CLI command: ``policy``
    (``[refresh]`` resolved from flags, ``QUANTCLI_REFRESH_*`` and quantcli.toml) and
    ``on_attempt`` (the run's observer: attempt log lines and per-provider metrics)."""
    from quantcli.ops.http import HttpPolicy

    run = run_of(meta)
    config = settings.config
    return {
        "policy": HttpPolicy(**config.refresh.overrides()) if config is not None else None,
        "on_attempt": None if run is None else run.on_attempt,
    }
