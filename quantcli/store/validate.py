"""Data-quality checks on canonical bars; used by ``data ingest`` and ``data validate``.

Each finding has a severity. Errors always stop an ingest; warnings stop it unless
``--allow-warnings`` is given. The severities, and why:

- error: ``columns`` (required column missing or mistyped), ``null`` (null or NaN in a required
  column), ``non_positive_price``, ``negative_volume``, ``ohlc`` (need low <= open, close <= high),
  ``duplicate`` (two bars for one (symbol, ts); exact copies too, as vendors' repeated days are
  the common case and keeping both double-counts volume), ``daily_stamp`` (a daily bar not at
  00:00 IST: wrong --interval or time zone), ``outside_hours`` (an intraday bar on a session day
  but outside that day's trading windows: clock or time-zone error);
- warning: ``non_session_day`` (a bar on a day the calendar has no session: the calendar does not
  record every historical special session, e.g. pre-2023 Saturday and Muhurat sessions that the
  real NSE sample has), ``missing_session`` (sessions between a symbol's first and last bar with
  no bar: suspensions and vendor gaps are real), ``calendar_coverage`` (bars outside the
  calendar's years, not session-checked), ``suspected_split`` (an overnight move beyond the
  threshold with no corporate action on record: likely unadjusted), ``stale_prev_close`` (on a
  split or bonus ex-date on record, a daily ``prev_close`` equal to the previous bar's raw close:
  derived before the action was imported; ``rederive_prev_close`` publishes a corrected version).

Checks are vectorised polars over the whole frame; only the first ``max_examples`` findings of
each check are kept as examples, while ``counts`` holds every occurrence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl

from quantcli.core.timezone import DAY_US, IST_OFFSET_US
from quantcli.errors import DataError
from quantcli.store.manifest import RAW, partition_actions
from quantcli.store.schema import REQUIRED
from quantcli.store.sources.base import FILE_COL, ROW_COL

if TYPE_CHECKING:
    from quantcli.market.corporate_actions import CorporateAction

Severity = Literal["error", "warning"]

CHECKS: Final[dict[str, Severity]] = {
    "columns": "error",
    "null": "error",
    "non_positive_price": "error",
    "negative_volume": "error",
    "ohlc": "error",
    "duplicate": "error",
    "daily_stamp": "error",
    "outside_hours": "error",
    "non_session_day": "warning",
    "missing_session": "warning",
    "calendar_coverage": "warning",
    "suspected_split": "warning",
    "stale_prev_close": "warning",
}

DEFAULT_SPLIT_THRESHOLD: Final = 0.35
DEFAULT_MAX_EXAMPLES: Final = 20
PRICES: Final = ("open", "high", "low", "close")
_NO_FILE: Final = 1 << 30


def ist_day(ts: pl.Expr) -> pl.Expr:
    """The IST date of a timestamp by integer arithmetic: ``dt.date()`` on a zoned column looks
    the offset up per row and costs seconds on 10M rows, while IST's offset is fixed."""
    local = ts.dt.epoch("us") + IST_OFFSET_US
    return local.floordiv(DAY_US).cast(pl.Int32).cast(pl.Date)


def ist_time_us(ts: pl.Expr) -> pl.Expr:
    """Microseconds since IST midnight (0 for a daily bar's stamp)."""
    return (ts.dt.epoch("us") + IST_OFFSET_US) % DAY_US


def show_ts(ts: datetime | date | None, interval: str) -> str:
    """A bar time for people: the date for daily bars, else minutes with the offset."""
    if ts is None:
        return ""
    if isinstance(ts, datetime):
        if interval == "1d" and ts.time() == time(0):
            return ts.date().isoformat()
        return ts.isoformat(sep=" ", timespec="minutes")
    return ts.isoformat()


@dataclass(frozen=True)
class Finding:
    """One problem: which check, how bad, and where (symbol, ts, file, 1-based data row)."""

    severity: Severity
    check: str
    message: str
    symbol: str | None = None
    ts: datetime | date | None = None
    file: str | None = None
    row: int | None = None
    order: tuple[int, int] = field(default=(_NO_FILE, 0), repr=False, compare=False)

    def line(self) -> str:
        """``file:row: check: message`` (the location parts that are known)."""
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.row}: " if self.row is not None else f"{self.file}: "
        return f"{where}{self.check}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {
            "severity": self.severity,
            "check": self.check,
            "message": self.message,
            "symbol": self.symbol,
            "ts": None if self.ts is None else self.ts.isoformat(),
            "file": self.file,
            "row": self.row,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Findings (examples, at most ``max_examples`` per check) and every check's full count."""

    rows: int
    symbols: int
    findings: tuple[Finding, ...]
    counts: Mapping[str, int]

    @property
    def errors(self) -> int:
        """Occurrences of error-level problems."""
        return sum(n for c, n in self.counts.items() if CHECKS[c] == "error")

    @property
    def warnings(self) -> int:
        """Occurrences of warning-level problems."""
        return sum(n for c, n in self.counts.items() if CHECKS[c] == "warning")

    @property
    def ok(self) -> bool:
        """No error-level findings."""
        return self.errors == 0

    def first(self) -> Finding | None:
        """The first error in input order, else the first warning, else None."""
        for severity in ("error", "warning"):
            found = [f for f in self.findings if f.severity == severity]
            if found:
                return min(found, key=lambda f: f.order)
        return None

    def summary(self) -> str:
        """``450 duplicate, 3 missing_session`` (errors first)."""
        checks = sorted(self.counts, key=lambda c: (CHECKS[c] != "error", list(CHECKS).index(c)))
        return ", ".join(f"{self.counts[c]:,} {c}" for c in checks)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready report."""
        return {
            "rows": self.rows,
            "symbols": self.symbols,
            "errors": self.errors,
            "warnings": self.warnings,
            "counts": dict(self.counts),
            "findings": [f.to_dict() for f in self.findings],
        }


def refuse(report: ValidationReport, *, allow_warnings: bool) -> None:
    """Raise DataError for errors, or for warnings unless allowed: one line, first finding first."""
    first = report.first()
    if first is None or (first.severity == "warning" and allow_warnings):
        return
    total = report.errors + report.warnings
    more = f" (and {total - 1:,} more: {report.summary()})" if total > 1 else ""
    hint = "; pass --allow-warnings to accept warnings" if report.ok else ""
    raise DataError(f"{first.check}: {first.message}{more}{hint}", path=first.file, row=first.row)


@dataclass
class _Collector:
    """Accumulates findings and counts while the checks run."""

    labels: Sequence[str]
    interval: str
    max_examples: int
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, check: str, count: int, examples: Sequence[Finding] = ()) -> None:
        if count:
            self.counts[check] = self.counts.get(check, 0) + count
            self.findings.extend(examples)

    def show_ts(self, ts: datetime | date | None) -> str:
        return show_ts(ts, self.interval)

    def rows(
        self,
        frame: pl.DataFrame,
        mask: pl.Expr,
        check: str,
        message: Callable[[Mapping[str, Any]], str],
    ) -> None:
        """Findings for the rows where ``mask`` holds, examples in input (file, row) order."""
        flagged = frame.filter(mask.fill_null(False))
        if flagged.height == 0:
            return
        if FILE_COL in flagged.columns:
            flagged = flagged.sort(FILE_COL, ROW_COL)
        examples = [
            self.finding(check, message(r), r)
            for r in flagged.head(self.max_examples).iter_rows(named=True)
        ]
        self.add(check, flagged.height, examples)

    def finding(self, check: str, message: str, row: Mapping[str, Any]) -> Finding:
        index = row.get(FILE_COL)
        number = row.get(ROW_COL)
        return Finding(
            severity=CHECKS[check],
            check=check,
            message=message,
            symbol=row.get("symbol"),
            ts=row.get("ts"),
            file=None if index is None else self.labels[index],
            row=number,
            order=(_NO_FILE if index is None else index, number or 0),
        )


def validate_frame(
    frame: pl.DataFrame,
    *,
    interval: str,
    files: Sequence[str] = (),
    root: Path | None = None,
    split_threshold: float = DEFAULT_SPLIT_THRESHOLD,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    prices: str = RAW,
) -> ValidationReport:
    """Run every check on canonical bars.

    ``files`` labels the ``__file`` indices when the frame carries ``__file``/``__row``;
    ``root`` lets the checks see the store's own corporate actions and calendar imports, of
    which the split checks use those that apply to prices of kind ``prices``
    (``manifest.partition_actions``: none for vendor split-adjusted prices).
    """
    from quantcli.market.calendar import using_store

    out = _Collector(files, interval, max_examples)
    symbols = frame["symbol"].n_unique() if "symbol" in frame.columns else 0
    with using_store(root):
        frame = _run_checks(frame, out, root, split_threshold, prices)
    order = list(CHECKS)
    findings = sorted(
        out.findings, key=lambda f: (f.severity != "error", order.index(f.check), f.order)
    )
    return ValidationReport(
        rows=frame.height, symbols=symbols, findings=tuple(findings), counts=out.counts
    )


def _run_checks(
    frame: pl.DataFrame, out: _Collector, root: Path | None, split_threshold: float, prices: str
) -> pl.DataFrame:
    """Every check on ``frame``; returns it sorted when its columns allow."""
    interval = out.interval
    if _check_columns(frame, out):
        frame = sort_bars(frame)
        _check_rows(frame, out)
        _check_duplicates(frame, out)
        if interval == "1d":
            out.rows(
                frame,
                ist_time_us(pl.col("ts")) != 0,
                "daily_stamp",
                lambda r: (
                    f"daily bar stamped {r['ts']:%H:%M}, expected 00:00 IST "
                    "(wrong --interval or --timezone?)"
                ),
            )
        _check_sessions(frame, out)
        _check_splits(frame, out, root, split_threshold, prices=prices)
        if interval == "1d" and "prev_close" in frame.columns:
            _check_prev_close(frame, out, root, prices)
    return frame


def _check_columns(frame: pl.DataFrame, out: _Collector) -> bool:
    problems = [
        f"{name} is missing"
        if name not in frame.columns
        else f"{name} is {frame[name].dtype}, expected {dtype}"
        for name, dtype in REQUIRED.items()
        if name not in frame.columns or frame[name].dtype != dtype
    ]
    if problems:
        out.add("columns", len(problems), [Finding("error", "columns", "; ".join(problems))])
    return not problems


def sort_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in (symbol, ts) order; a stable sort keeps repeated bars in input order."""
    symbol, ts = pl.col("symbol"), pl.col("ts")
    ordered = (symbol > symbol.shift(1)) | ((symbol == symbol.shift(1)) & (ts >= ts.shift(1)))
    in_order = frame.select(ordered.slice(1).fill_null(False).all()).item()
    return frame if in_order else frame.sort("symbol", "ts", maintain_order=True, nulls_last=True)


def _describe(name: str, template: str) -> Callable[[Mapping[str, Any]], str]:
    """A message naming column ``name`` and its value (None shown as null)."""

    def message(row: Mapping[str, Any]) -> str:
        value = row[name]
        nan = isinstance(value, float) and math.isnan(value)
        shown = "null" if value is None else "NaN" if nan else value
        return f"{name} " + template.format(shown).strip()

    return message


def _check_rows(frame: pl.DataFrame, out: _Collector) -> None:
    for name in REQUIRED:
        column = pl.col(name)
        missing = column.is_null() | column.is_nan() if name in PRICES else column.is_null()
        out.rows(frame, missing, "null", _describe(name, "is {} "))
    for name in PRICES:
        out.rows(
            frame, pl.col(name) <= 0, "non_positive_price", _describe(name, "is {}, not positive")
        )
    out.rows(frame, pl.col("volume") < 0, "negative_volume", lambda r: f"volume is {r['volume']}")
    o, h, lo, c = (pl.col(n) for n in PRICES)
    # NaN orders above every number in polars; the null check already reports those rows.
    comparable = pl.all_horizontal(pl.col(n).is_not_nan() for n in PRICES)
    out.rows(
        frame,
        comparable & ((lo > h) | (o < lo) | (o > h) | (c < lo) | (c > h)),
        "ohlc",
        lambda r: (
            f"open {r['open']} high {r['high']} low {r['low']} close {r['close']} for "
            f"({r['symbol']}, {out.show_ts(r['ts'])}): need low <= open, close <= high"
        ),
    )


def _check_duplicates(frame: pl.DataFrame, out: _Collector) -> None:
    """On sorted bars a repeated (symbol, ts) is adjacent; point each repeat at the first."""
    symbol, ts = pl.col("symbol"), pl.col("ts")
    repeat = (symbol == symbol.shift(1)) & (ts == ts.shift(1))
    located = FILE_COL in frame.columns
    extra = (
        [
            pl.when(~repeat.fill_null(False)).then(pl.col(c)).forward_fill().alias(f"__first{c}")
            for c in (FILE_COL, ROW_COL)
        ]
        if located
        else []
    )
    marked = frame.with_columns(repeat.fill_null(False).alias("__repeat"), *extra)

    def message(r: Mapping[str, Any]) -> str:
        text = f"duplicate bar ({r['symbol']}, {out.show_ts(r['ts'])})"
        if located:
            first_file = out.labels[r[f"__first{FILE_COL}"]]
            same = r[f"__first{FILE_COL}"] == r[FILE_COL]
            text += f", first at row {r[f'__first{ROW_COL}']}" + (
                "" if same else f" of {first_file}"
            )
        return text

    out.rows(marked, pl.col("__repeat"), "duplicate", message)


def _check_sessions(frame: pl.DataFrame, out: _Collector) -> None:
    from quantcli.market import calendar

    first, last = calendar.coverage()
    day = ist_day(pl.col("ts"))
    uncovered = frame.select(((day < first) | (day > last)).sum()).item()
    if uncovered:
        span = frame.select(day.min().alias("a"), day.max().alias("b")).row(0)
        out.add(
            "calendar_coverage",
            uncovered,
            [
                Finding(
                    "warning",
                    "calendar_coverage",
                    f"{uncovered:,} bars between {span[0]} and {span[1]} fall outside the "
                    f"calendar's {first}..{last}; their sessions were not checked",
                )
            ],
        )
    covered = frame.filter(day.is_between(first, last)) if uncovered else frame
    if covered.height == 0:
        return
    stamps = covered["ts"].unique().sort()
    outside = stamps.filter(calendar.bars_outside_sessions(stamps, out.interval))
    if outside.len():
        off_days = outside.dt.date().unique()
        off_days = off_days.filter(~calendar.session_mask(off_days))
        bad = pl.col("ts").is_in(outside.implode())
        on_off_day = day.is_in(off_days.implode())
        out.rows(
            covered,
            bad & on_off_day,
            "non_session_day",
            lambda r: f"bar on {r['ts']:%Y-%m-%d (%a)}, which the NSE calendar has as no session",
        )
        out.rows(
            covered,
            bad & ~on_off_day,
            "outside_hours",
            lambda r: f"bar at {out.show_ts(r['ts'])} is outside the session's trading hours",
        )
    _check_missing(covered, out)


def _check_missing(frame: pl.DataFrame, out: _Collector) -> None:
    """Sessions between each symbol's first and last bar that have no bar."""
    from quantcli.market import calendar

    days = frame.select(pl.col("symbol"), ist_day(pl.col("ts")).alias("day")).filter(
        (pl.col("symbol") != pl.col("symbol").shift(1)).fill_null(True)
        | (pl.col("day") != pl.col("day").shift(1)).fill_null(True)
    )
    lo, hi = days["day"].min(), days["day"].max()
    assert isinstance(lo, date) and isinstance(hi, date)
    sessions = pl.Series("day", calendar.sessions(lo, hi), dtype=pl.Date)
    spans = (
        days.with_columns(pl.col("symbol").rle_id().alias("run"))
        .group_by("run")
        .agg(
            pl.col("symbol").first(),
            pl.col("day").min().alias("first"),
            pl.col("day").max().alias("last"),
            pl.col("day").is_in(sessions.implode()).sum().alias("present"),
        )
        .sort("symbol")
    )
    left = sessions.search_sorted(spans["first"], side="left")
    right = sessions.search_sorted(spans["last"], side="right")
    spans = (
        spans.with_columns((right - left).cast(pl.Int64).alias("expected"))
        .with_columns((pl.col("expected") - pl.col("present")).alias("missing"))
        .filter(pl.col("missing") > 0)
    )
    examples = []
    for row in spans.head(out.max_examples).iter_rows(named=True):
        symbol_days = days.filter(pl.col("symbol") == row["symbol"])["day"]
        gaps = calendar.missing_sessions(symbol_days, row["first"], row["last"])
        shown = ", ".join(d.isoformat() for d in gaps[:5]) + (", ..." if len(gaps) > 5 else "")
        examples.append(
            Finding(
                "warning",
                "missing_session",
                f"{row['symbol']}: {row['missing']:,} session(s) without a bar between "
                f"{row['first']} and {row['last']}: {shown}",
                symbol=row["symbol"],
                ts=gaps[0] if gaps else None,
            )
        )
    out.add("missing_session", int(spans["missing"].sum()), examples)


def suspected_splits(
    frame: pl.DataFrame,
    actions: Sequence[CorporateAction],
    *,
    threshold: float = DEFAULT_SPLIT_THRESHOLD,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> tuple[tuple[Finding, ...], int]:
    """The ``suspected_split`` check alone, on bars sorted by (symbol, ts) with ``actions`` as
    the actions on record (what a backtest applies): (example findings, count)."""
    out = _Collector((), "1d", max_examples)
    _check_splits(frame, out, None, threshold, actions=actions)
    return tuple(out.findings), out.counts.get("suspected_split", 0)


def _check_splits(
    frame: pl.DataFrame,
    out: _Collector,
    root: Path | None,
    threshold: float,
    *,
    actions: Sequence[CorporateAction] | None = None,
    prices: str = RAW,
) -> None:
    """Overnight moves beyond ``threshold`` with no corporate action that day (among
    ``actions``; by default the store's and the bundled ones that apply to prices of kind
    ``prices``)."""
    symbol, day = pl.col("symbol"), ist_day(pl.col("ts"))
    move = pl.col("open") / pl.col("close").shift(1) - 1
    positive = (pl.col("open") > 0) & (pl.col("close").shift(1) > 0)  # else not a price move
    jump = (
        (symbol == symbol.shift(1))
        & (day != day.shift(1))
        & positive
        & (move.abs().fill_nan(0.0) > threshold)
    )
    flagged = frame.with_columns(
        move.alias("__move"), pl.col("close").shift(1).alias("__prev")
    ).filter(jump.fill_null(False))
    if flagged.height == 0:
        return
    if actions is None:
        from quantcli.market.corporate_actions import actions_for

        actions, _ = partition_actions(actions_for(sorted(set(flagged["symbol"])), root), prices)
    known = pl.DataFrame(
        {"symbol": [a.symbol for a in actions], "__day": [a.ex_date for a in actions]},
        schema={"symbol": pl.String, "__day": pl.Date},
    )
    unexplained = flagged.with_columns(day.alias("__day")).join(
        known.unique(), on=["symbol", "__day"], how="anti"
    )
    out.rows(
        unexplained,
        pl.lit(value=True),
        "suspected_split",
        lambda r: (
            f"({r['symbol']}, {out.show_ts(r['ts'])}) opens {r['__move']:+.1%} from the "
            f"previous close ({r['__prev']} -> {r['open']}) with no corporate action on record: "
            "unadjusted split or bonus?"
        ),
    )


# --------------------------------------------------------------------------- stale prev_close

REDERIVE_HINT: Final = "re-derive them as a new version with `quantcli data rederive NAME`"


def _stale_prev_close(frame: pl.DataFrame, root: Path | None, prices: str) -> pl.DataFrame:
    """``frame`` (sorted by (symbol, ts)) with ``__stale`` (bool), ``__previous`` (the previous
    bar's close) and ``__ratio``: stale where a bar on a split/bonus ex-date on record has as
    ``prev_close`` the previous close unadjusted, which is what ingest derives (close of the
    previous bar divided by the day's ratio) while the action was not yet on record. A value
    the source gave adjusted is left alone. Only actions that apply to prices of kind
    ``prices`` count: vendor split-adjusted prices have no unadjusted previous close."""
    from quantcli.market.corporate_actions import actions_for, split_ratios

    symbols = frame.get_column("symbol").unique().sort().to_list()
    applied, _ = partition_actions(actions_for(symbols, root), prices)
    splits = [
        (symbol, day, ratio)
        for symbol, days in split_ratios(applied).items()
        for day, ratio in days.items()
        if ratio != 1.0
    ]
    ratios = pl.DataFrame(
        splits, schema={"symbol": pl.String, "__day": pl.Date, "__ratio": pl.Float64}, orient="row"
    )
    symbol = pl.col("symbol")
    previous = pl.when(symbol == symbol.shift(1)).then(pl.col("close").shift(1))
    marked = (
        frame.with_columns(previous.alias("__previous"), ist_day(pl.col("ts")).alias("__day"))
        .join(ratios, on=["symbol", "__day"], how="left", maintain_order="left")
        .drop("__day")
    )
    given, prev = pl.col("prev_close"), pl.col("__previous")
    stale = pl.col("__ratio").is_not_null() & ((given - prev).abs() <= 1e-9 * prev.abs())
    return marked.with_columns(stale.fill_null(False).alias("__stale"))


def _check_prev_close(frame: pl.DataFrame, out: _Collector, root: Path | None, prices: str) -> None:
    marked = _stale_prev_close(frame, root, prices)
    out.rows(
        marked,
        pl.col("__stale"),
        "stale_prev_close",
        lambda r: (
            f"({r['symbol']}, {out.show_ts(r['ts'])}) prev_close {r['prev_close']} is the "
            f"previous close unadjusted for the split/bonus (ratio {r['__ratio']:g}) on record, "
            f"expected {r['__previous'] / r['__ratio']:g} (derived before the action was "
            f"imported?); {REDERIVE_HINT}"
        ),
    )


@dataclass(frozen=True)
class RederiveReport:
    """What ``rederive_prev_close`` did: the version it read, how many values it re-derived
    and the version it published (None when nothing was stale)."""

    ref: str
    rederived: int
    created: str | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {"ref": self.ref, "rederived": self.rederived, "created": self.created}


def rederive_prev_close(root: Path, ref: str) -> RederiveReport:
    """Re-derive the stale ``prev_close`` values of daily dataset ``ref`` (its latest version)
    from the corporate actions now on record, and publish the result as a new version whose
    parent is ``ref``'s; the old version is never changed. Nothing is published when no value
    is stale. ConflictError when ``ref`` is not the latest version (or another writer
    publishes meanwhile).
    """
    from quantcli.errors import ConflictError, UsageError
    from quantcli.store.ingest import fill_prev_close
    from quantcli.store.publish import publish
    from quantcli.store.reader import open_dataset

    version = open_dataset(ref, root)
    manifest = version.manifest
    if manifest.interval != "1d":
        raise UsageError(f"{manifest.ref} holds {manifest.interval} bars; prev_close is daily")
    bars = version.lazy().collect()
    if "prev_close" not in bars.columns:
        return RederiveReport(manifest.ref, 0, None)
    marked = _stale_prev_close(sort_bars(bars), root, manifest.prices)
    stale = int(marked.get_column("__stale").sum())
    if not stale:
        return RederiveReport(manifest.ref, 0, None)
    cleared = marked.with_columns(
        pl.when(pl.col("__stale")).then(None).otherwise(pl.col("prev_close")).alias("prev_close")
    ).select(bars.columns)
    fixed, filled = fill_prev_close(cleared, root, manifest.prices)
    latest = open_dataset(manifest.name, root).manifest
    if latest.version != manifest.version:
        raise ConflictError(
            f"{manifest.ref} is not the latest version of {manifest.name} ({latest.ref}); "
            f"re-derive the latest: `quantcli data rederive {manifest.name}`"
        )
    result = publish(
        root,
        manifest.name,
        fixed,
        interval=manifest.interval,
        source=manifest.source,
        parent=manifest.version,
        notes={**manifest.notes, "prev_close_rederived": filled},
        prices=manifest.prices,
        expect_latest=manifest.version,
    )
    return RederiveReport(manifest.ref, filled, result.manifest.ref)
