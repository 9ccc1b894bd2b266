"""``data refresh``: fetch the sessions a dataset is missing and publish them as one version.

The sessions are the NSE calendar's (special sessions included) after the latest version's
last bar, up to the last session whose close has passed in IST. Each is fetched from the
recipe's providers in order, checked, and the batch goes through ingest (the same parsing,
validation and atomic publish as ``data ingest --append``), so the new version's parent is
the latest and a re-run never duplicates a bar.

Failure semantics: prefix-publish. When a session cannot be fetched (every provider failed,
or served a bad file), the sessions before it, a contiguous prefix, are published as one
version and the error is raised after it; the dataset then has no gap and is as current as
the providers allow, and the next run starts at the failed session. Bars that fail
ingest's validation publish nothing: validation judges the batch as a whole, so no part of it
is known good. A refresh killed at any moment leaves no partial version (publish is one
rename) and the next run fetches what is still missing.

A run holds the dataset's refresh lock (``.refresh.lock``) throughout, so two overlapping
cron jobs never fetch the same sessions; the second exits 75. Publishing takes the writer
lock as every publish does.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from quantcli.core.files import atomic_write_bytes, make_temp_dir
from quantcli.core.hashing import sha256_hex
from quantcli.core.lock import dataset_lock
from quantcli.core.timezone import IST
from quantcli.errors import DataError, QuantcliError, UsageError
from quantcli.market import calendar
from quantcli.ops.download import bhavcopy_check
from quantcli.ops.http import Attempt, Fetched, Fetcher, HttpPolicy
from quantcli.ops.recipe import INGEST_KIND, Recipe, load_recipe
from quantcli.store.manifest import InputFile, Manifest, read_manifest, version_dir, version_numbers

REFRESH_LOCK: Final = ".refresh.lock"
PROVIDERS_FILE: Final = "providers.json"


def last_completed_session(now: datetime) -> date:
    """The last session whose close is at or before ``now`` (tz-aware; judged in IST)."""
    today = now.astimezone(IST).date()
    if calendar.is_session(today) and now >= calendar.session_close(today):
        return today
    return calendar.previous_session(today)


@dataclass(frozen=True)
class Plan:
    """The sessions a refresh fetches: after ``after`` (the latest version's last bar day, None
    without a version) up to ``until``."""

    name: str
    latest: int | None
    after: date | None
    until: date
    sessions: tuple[date, ...]


def _last_bar_day(manifest: Manifest) -> date:
    return manifest.last_ts.astimezone(IST).date()


def latest_manifest(root: Path, name: str) -> Manifest | None:
    """The latest version's manifest of ``name``, None when it has none."""
    versions = version_numbers(root, name)
    return read_manifest(version_dir(root, name, versions[-1])) if versions else None


def plan_sessions(
    root: Path,
    recipe: Recipe,
    *,
    until: date | None = None,
    now: datetime | None = None,
) -> Plan:
    """The sessions ``recipe``'s dataset is missing, up to ``until`` (default: the last
    completed session at ``now``, default the clock). UsageError for an ``until`` after the
    last completed session, for a dataset without a version and without a recipe start, or
    for intraday bars (a refresh fetches daily files)."""
    with calendar.using_store(root):
        last_done = last_completed_session(now or datetime.now(IST))
        if until is None:
            until = last_done
        elif until > last_done:
            raise UsageError(
                f"--until {until} is after the last completed session ({last_done}); "
                "a session is fetched once its close has passed"
            )
        latest = latest_manifest(root, recipe.name)
        if latest is None:
            if recipe.start is None:
                raise UsageError(
                    f"dataset {recipe.name} has no version yet: give the recipe a first session "
                    f"(`quantcli data recipe set {recipe.name} ... --start DATE`) or ingest one"
                )
            after, first = None, recipe.start
        else:
            if latest.interval != "1d":
                raise UsageError(
                    f"{latest.ref} holds {latest.interval} bars; refresh fetches daily files"
                )
            after = _last_bar_day(latest)
            first = after + timedelta(days=1)
        days = tuple(calendar.sessions(first, until)) if first <= until else ()
    return Plan(
        name=recipe.name,
        latest=None if latest is None else latest.version,
        after=after,
        until=until,
        sessions=days,
    )


@dataclass
class ProviderStats:
    """One provider's record over every refresh of a dataset (the provider matrix)."""

    attempts: int = 0
    successes: int = 0  # attempts that returned a file that passed the checks
    failures: int = 0  # every other attempt
    retries: int = 0  # the failures that were retried at the same provider
    sessions_served: int = 0
    latency_s: float = 0.0  # summed over attempts
    last_success: str | None = None  # ISO UTC time
    last_failure: str | None = None  # "ISO UTC time: outcome (detail)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the mean latency per attempt."""
        mean = self.latency_s / self.attempts if self.attempts else None
        return {
            "attempts": self.attempts,
            "successes": self.successes,
            "failures": self.failures,
            "retries": self.retries,
            "sessions_served": self.sessions_served,
            "latency_s_total": round(self.latency_s, 6),
            "latency_s_mean": None if mean is None else round(mean, 6),
            "last_success": self.last_success,
            "last_failure": self.last_failure,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProviderStats:
        """Parse ``to_dict``'s form."""
        return cls(
            attempts=int(d["attempts"]),
            successes=int(d["successes"]),
            failures=int(d["failures"]),
            retries=int(d["retries"]),
            sessions_served=int(d["sessions_served"]),
            latency_s=float(d["latency_s_total"]),
            last_success=d.get("last_success"),
            last_failure=d.get("last_failure"),
        )


def providers_path(root: Path, name: str) -> Path:
    """Where dataset ``name``'s provider matrix is kept."""
    return root / name / PROVIDERS_FILE


def read_matrix(root: Path, name: str) -> dict[str, ProviderStats]:
    """Provider label -> its record, for every provider that ever served ``name`` a refresh;
    an unreadable file counts as empty (it is statistics, rebuilt by the next runs)."""
    path = providers_path(root, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): ProviderStats.from_dict(v) for k, v in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_matrix(root: Path, name: str, matrix: Mapping[str, ProviderStats]) -> None:
    doc = {label: stats.to_dict() for label, stats in sorted(matrix.items())}
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(providers_path(root, name), text.encode("utf-8"))


@dataclass
class _Recorder:
    """Counts every attempt of this run per provider (observer of the Fetcher)."""

    stats: dict[str, ProviderStats] = field(default_factory=dict)
    forward: Callable[[Attempt], None] | None = None

    def __call__(self, attempt: Attempt) -> None:
        stats = self.stats.setdefault(attempt.provider, ProviderStats())
        stats.attempts += 1
        stats.latency_s += attempt.latency_s
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if attempt.outcome == "ok":
            stats.successes += 1
            stats.last_success = now
        else:
            stats.failures += 1
            stats.retries += attempt.outcome == "retry"
            detail = f" ({attempt.detail})" if attempt.detail else ""
            stats.last_failure = f"{now}: {attempt.outcome}{detail}"
        if self.forward is not None:
            self.forward(attempt)

    def served(self, fetched: Sequence[Fetched]) -> None:
        for item in fetched:
            self.stats.setdefault(item.provider_label, ProviderStats()).sessions_served += 1

    def merged_into(self, matrix: dict[str, ProviderStats]) -> dict[str, ProviderStats]:
        for label, run in self.stats.items():
            total = matrix.setdefault(label, ProviderStats())
            total.attempts += run.attempts
            total.successes += run.successes
            total.failures += run.failures
            total.retries += run.retries
            total.sessions_served += run.sessions_served
            total.latency_s += run.latency_s
            total.last_success = run.last_success or total.last_success
            total.last_failure = run.last_failure or total.last_failure
        return matrix


@dataclass(frozen=True)
class RefreshReport:
    """What a refresh did: its plan, the sessions published and who served them."""

    plan: Plan
    providers: tuple[str, ...]  # the recipe's, as labels
    dry_run: bool
    matrix: Mapping[str, ProviderStats]  # the dataset's provider matrix after the run
    seconds: float
    this_run: Mapping[str, ProviderStats] = field(default_factory=dict)  # this run's attempts
    served: Mapping[date, str] = field(default_factory=dict)  # published session -> provider
    version: int | None = None  # the version published (None: nothing published)
    rows_added: int = 0
    rows: int | None = None  # rows in the new version

    @property
    def up_to_date(self) -> bool:
        """Nothing was missing."""
        return not self.plan.sessions

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``--json``); provider labels only, never templates."""
        return {
            "name": self.plan.name,
            "dry_run": self.dry_run,
            "up_to_date": self.up_to_date,
            "latest": self.plan.latest,
            "after": None if self.plan.after is None else self.plan.after.isoformat(),
            "until": self.plan.until.isoformat(),
            "sessions": [d.isoformat() for d in self.plan.sessions],
            "providers": list(self.providers),
            "published": {d.isoformat(): p for d, p in sorted(self.served.items())},
            "version": self.version,
            "ref": None if self.version is None else f"{self.plan.name}@v{self.version}",
            "rows_added": self.rows_added,
            "rows": self.rows,
            "provider_matrix": {k: v.to_dict() for k, v in sorted(self.matrix.items())},
            "this_run": {k: v.to_dict() for k, v in sorted(self.this_run.items())},
            "seconds": round(self.seconds, 3),
        }


@contextmanager
def refresh_lock(root: Path, name: str, *, wait: float = 0) -> Iterator[None]:
    """Hold ``name``'s refresh lock (LockHeldError, exit 75, while another refresh runs)."""
    with dataset_lock(root, name, wait=wait, what="a refresh of", file=REFRESH_LOCK):
        yield


def _fetch_all(
    fetcher: Fetcher, recipe: Recipe, days: Sequence[date]
) -> tuple[list[Fetched], QuantcliError | None]:
    """The longest prefix of ``days`` fetched, in order, and the error of the first session
    that failed (None: all fetched); sessions after it are not fetched."""
    done: list[Fetched] = []
    try:
        for item in fetcher.fetch_many(days, recipe.providers, bhavcopy_check(recipe.layout)):
            done.append(item)
    except QuantcliError as exc:
        return done, exc
    return done, None


def _publish(
    root: Path, recipe: Recipe, fetched: Sequence[Fetched], latest: int | None
) -> tuple[int, int, int]:
    """Ingest the fetched sessions as the next version; (version, rows added, rows).

    A DataError names the session and its provider instead of the temp file ingest read."""
    from quantcli.store.ingest import ingest

    tmp = make_temp_dir(root, recipe.name, "refresh")
    try:
        files, shown = [], {}
        for item in fetched:
            path = tmp / f"{item.day.isoformat()}.csv"
            path.write_bytes(item.content)
            files.append(path)
            shown[str(path)] = f"{item.day.isoformat()} from {item.provider_label}"
        inputs = [
            InputFile(
                f"{item.day.isoformat()} {item.provider_label}",
                sha256_hex(item.content),
                len(item.content),
            )
            for item in fetched
        ]
        notes = {
            "refresh": {
                "recipe": recipe.digest,
                "served": {item.day.isoformat(): item.provider_label for item in fetched},
            }
        }
        before = 0 if latest is None else read_manifest(version_dir(root, recipe.name, latest)).rows
        try:
            report = ingest(
                root,
                recipe.name,
                INGEST_KIND,
                files,
                options=recipe.options,
                interval="1d",
                append=latest is not None,
                allow_warnings=recipe.allow_warnings,
                symbols=recipe.symbols,
                extra_notes=notes,
                inputs=inputs,
            )
        except DataError as exc:
            if exc.path in shown:
                exc.message = shown[exc.path] + exc.message[len(exc.path) :]
                exc.path = shown[exc.path]
                exc.args = (exc.message,)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report.version, report.rows - before, report.rows


def refresh(
    root: Path,
    name: str,
    *,
    until: date | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    policy: HttpPolicy | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> RefreshReport:
    """Bring dataset ``name`` up to date from its recipe (see the module docstring).

    ``policy`` sets timeouts, retries and how many sessions are fetched at once (default
    ``HttpPolicy()``); ``on_attempt`` sees every fetch attempt (logs, metrics). With
    ``dry_run`` nothing is fetched or written and no lock is taken.

    Raises what fetching raised (ProvidersUnavailable, exit 69; BadDownload, 65) after
    publishing the prefix fetched before the failed session: its message then says what was
    published and its ``result`` is the report. DataError (65) from validation publishes
    nothing; LockHeldError (75) while another refresh of ``name`` runs.
    """
    started = time.monotonic()
    recipe = load_recipe(root, name)
    labels = tuple(p.label for p in recipe.providers)

    def report(plan: Plan, **done: Any) -> RefreshReport:
        done.setdefault("matrix", read_matrix(root, name))
        return RefreshReport(plan, labels, dry_run, seconds=time.monotonic() - started, **done)

    if dry_run:
        return report(plan_sessions(root, recipe, until=until, now=now))
    with refresh_lock(root, name):
        plan = plan_sessions(root, recipe, until=until, now=now)
        if not plan.sessions:
            return report(plan)
        recorder = _Recorder(forward=on_attempt)
        fetched: list[Fetched] = []
        try:
            with Fetcher(policy, on_attempt=recorder) as run:
                fetched, error = _fetch_all(run, recipe, plan.sessions)
            published = _publish(root, recipe, fetched, plan.latest) if fetched else None
            recorder.served(fetched)
        finally:
            # Kept whatever happened: the matrix is what tells a desk which feed failed.
            matrix = recorder.merged_into(read_matrix(root, name))
            _write_matrix(root, name, matrix)
    served = {item.day: item.provider_label for item in fetched}
    version, added, rows = published or (None, 0, None)
    result = report(
        plan,
        served=served,
        version=version,
        rows_added=added,
        rows=rows,
        matrix=matrix,
        this_run=recorder.stats,
    )
    if error is not None:
        _explain(error, result)
        raise error
    return result


def _explain(error: QuantcliError, report: RefreshReport) -> None:
    """Say in ``error`` what was published before it, so a re-run's starting point is clear."""
    if report.version is None:
        tail = "nothing published; the next refresh retries from the first missing session"
    else:
        last = max(report.served)
        tail = (
            f"published {report.plan.name}@v{report.version} with the {len(report.served):,} "
            f"session(s) through {last}; the next refresh resumes after it"
        )
    error.message = f"{error.message} ({tail})"
    error.args = (error.message,)
    error.result = report.to_dict()
