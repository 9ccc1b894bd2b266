"""Ingest: parse input files, validate the bars, and publish them as a new dataset version.

Nothing is written unless every check passes (warnings only with ``allow_warnings``): the
parsed frame is validated in memory and handed to ``publish``, which is atomic.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import polars as pl

from quantcli import log
from quantcli.core.dtypes import TS_DTYPE
from quantcli.core.hashing import sha256_file
from quantcli.core.intervals import INTERVALS
from quantcli.errors import ConflictError, DataError, NotFoundError, UsageError
from quantcli.market.calendar import using_store
from quantcli.store.manifest import (
    RAW,
    InputFile,
    Manifest,
    SourceInfo,
    check_name,
    partition_actions,
    prices_flag,
)
from quantcli.store.schema import ALL_COLUMNS, column_order
from quantcli.store.sources import BOOKKEEPING, FILE_COL, ROW_COL, parse_source, takes_prices
from quantcli.store.validate import (
    ValidationReport,
    ist_day,
    ist_time_us,
    refuse,
    sort_bars,
    validate_frame,
)

ON_CONFLICT: Final = ("fail", "replace")
PHASES: Final = ("parsed", "validated", "published")
_MINUTES_TO_INTERVAL: Final = {1: "1m", 5: "5m", 15: "15m", 60: "1h"}
_INTERVAL_MINUTES: Final = {v: k for k, v in _MINUTES_TO_INTERVAL.items()}
_US_PER_MINUTE: Final = 60_000_000
_KEY: Final = ["symbol", "ts"]


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: the version it published (or found unchanged) and the findings."""

    name: str
    version: int
    created: bool
    parent: int | None
    interval: str
    rows: int  # rows in the version
    input_rows: int  # rows parsed from the inputs
    symbols: int
    content_hash: str
    validation: ValidationReport
    conflicts_replaced: Mapping[str, int] = field(default_factory=dict)
    duplicates_dropped: Mapping[str, int] = field(default_factory=dict)
    ignored_columns: tuple[str, ...] = ()
    prices: str = RAW  # what the vendor already adjusted the prices for (manifest.PRICES)

    @property
    def ref(self) -> str:
        """``NAME@vN``."""
        return f"{self.name}@v{self.version}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready report."""
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "created": self.created,
            "parent": self.parent,
            "interval": self.interval,
            "rows": self.rows,
            "input_rows": self.input_rows,
            "symbols": self.symbols,
            "content_hash": self.content_hash,
            "prices": self.prices,
            "conflicts_replaced": dict(self.conflicts_replaced),
            "duplicates_dropped": dict(self.duplicates_dropped),
            "ignored_columns": list(self.ignored_columns),
            "validation": self.validation.to_dict(),
        }


def infer_interval(frame: pl.DataFrame) -> str:
    """``1d`` when every bar is at midnight, else the commonest spacing within a symbol's day.

    ``frame`` must be sorted by (symbol, ts).
    """
    ts = pl.col("ts")
    if frame.height == 0 or frame.select((ist_time_us(ts) == 0).all()).item():
        return "1d"
    same_day = (pl.col("symbol") == pl.col("symbol").shift(1)) & (
        ist_day(ts) == ist_day(ts).shift(1)
    )
    steps = (
        frame.select(ts.diff().dt.total_minutes().filter(same_day & (ts.diff() > pl.duration())))
        .to_series()
        .mode()
    )
    minutes = int(steps.min()) if steps.len() else None  # type: ignore[arg-type]
    if minutes not in _MINUTES_TO_INTERVAL:
        seen = "no two bars in one day" if minutes is None else f"commonest spacing {minutes} min"
        raise UsageError(
            f"cannot infer the bar interval ({seen}); pass --interval ({', '.join(INTERVALS)})"
        )
    return _MINUTES_TO_INTERVAL[minutes]


def check_given_interval(frame: pl.DataFrame, interval: str) -> None:
    """Refuse an ``--interval`` the data contradicts: daily bars (all at 00:00) ingested as
    intraday, or bars whose commonest spacing is another interval. Data whose interval cannot
    be inferred (sparse bars) is left to the grid check and validation."""
    try:
        inferred = infer_interval(frame)
    except UsageError:
        return
    if inferred == interval:
        return
    seen = (
        "every bar is at 00:00, so the bars are daily"
        if inferred == "1d"
        else f"bars within a day are {inferred} apart"
    )
    raise UsageError(
        f"--interval {interval} contradicts the data: {seen} (pass --interval {inferred}, "
        "or leave it out to infer it)"
    )


def check_grid(frame: pl.DataFrame, interval: str, labels: Sequence[str] = ()) -> None:
    """Refuse intraday bars off ``interval``'s grid: a bar must open a whole number of
    intervals after the open of the session window it falls in (09:15 on a normal day, a
    special session's own opens; all from the market calendar). Bars outside every window or
    on days the calendar does not cover are left to validation. ``labels`` name the
    ``__file`` indices in the error."""
    if interval == "1d" or frame.height == 0:
        return
    from quantcli.market import calendar

    first, last = calendar.coverage()
    days = frame.select(ist_day(pl.col("ts")).unique().sort()).to_series()
    windows = [
        (day, start, end)
        for day in days.filter(days.is_between(first, last)).to_list()
        if calendar.is_session(day)
        for start, end in calendar.session(day).windows
    ]
    if not windows:
        return
    table = pl.DataFrame(
        windows, schema={"__day": pl.Date, "__open": TS_DTYPE, "__close": TS_DTYPE}, orient="row"
    ).with_columns(ist_time_us(pl.col("__open")), ist_time_us(pl.col("__close")))
    tod, opens = pl.col("__tod"), pl.col("__open")
    step = _INTERVAL_MINUTES[interval] * _US_PER_MINUTE
    located = [c for c in BOOKKEEPING if c in frame.columns]
    off = (
        frame.select(
            "ts",
            *located,
            ist_day(pl.col("ts")).alias("__day"),
            ist_time_us(pl.col("ts")).alias("__tod"),
        )
        .join(table, on="__day", how="inner")
        .filter((tod >= opens) & (tod < pl.col("__close")) & ((tod - opens) % step != 0))
    )
    if off.height == 0:
        return
    bar = off.sort(located or "ts").row(0, named=True)
    minutes = bar["__open"] // _US_PER_MINUTE
    raise DataError(
        f"ts: bar at {bar['ts']:%Y-%m-%d %H:%M} is off the {interval} grid of the session "
        f"opening at {minutes // 60:02d}:{minutes % 60:02d} ({off.height:,} such bar(s); "
        "wrong --interval, or bars stamped with their close instead of their open?)",
        path=labels[bar[FILE_COL]] if FILE_COL in bar else None,
        row=bar.get(ROW_COL),
    )


def refuse_findings(
    report: ValidationReport, frame: pl.DataFrame, *, allow_warnings: bool, dropped: bool
) -> None:
    """``validate.refuse``, with the flag that fixes a duplicate: ``--drop-duplicates`` when
    the repeats are exact (``dropped``: it was given already)."""
    try:
        refuse(report, allow_warnings=allow_warnings)
    except DataError as exc:
        first = report.first()
        if first is None or first.check != "duplicate":
            raise
        exact = {} if dropped else drop_exact_duplicates(frame)[1]
        if exact:
            hint = (
                f"; pass --drop-duplicates to drop the {sum(exact.values()):,} exactly "
                "repeated bar(s)"
            )
        else:
            hint = (
                "; the repeated bars differ, which --drop-duplicates does not resolve: "
                "keep one of each in the input"
            )
        located = DataError(exc.message + hint)
        located.path, located.row = exc.path, exc.row
        raise located from None


def drop_exact_duplicates(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Drop bars equal in every column to the bar before them (sorted input); count per symbol.

    Repeated bars that differ are kept, so the duplicate check still refuses them.
    """
    values = [c for c in frame.columns if c not in BOOKKEEPING]
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(c).shift(1)) for c in values])
    marked = frame.with_columns(same.fill_null(False).alias("__same"))
    dropped = marked.filter(pl.col("__same")).group_by("symbol").len().sort("symbol")
    kept = marked.filter(~pl.col("__same")).drop("__same")
    return kept, dict(zip(dropped["symbol"].to_list(), dropped["len"].to_list(), strict=True))


def fill_prev_close(
    bars: pl.DataFrame, root: Path | None, prices: str = RAW
) -> tuple[pl.DataFrame, int]:
    """Daily ``bars`` (sorted by (symbol, ts)) with ``prev_close`` wherever the source gave
    none: the symbol's previous bar's close, divided on a split or bonus ex-date by its ratio,
    as the exchange's base price is (corporate actions from the bundled table and ``root``'s
    that apply to prices of kind ``prices``: none for vendor split-adjusted prices, whose
    previous close is adjusted already). Returns the frame and how many values were filled.

    With it, a daily return is ``close / prev_close - 1`` in every daily dataset: a per-symbol
    aggregate instead of a window over the symbol's history, and right across splits.
    """
    from quantcli.market.corporate_actions import actions_for, split_ratios

    if "prev_close" not in bars.columns:
        bars = bars.with_columns(pl.lit(None, dtype=pl.Float64).alias("prev_close"))
    before = bars.get_column("prev_close").null_count()
    if before == 0:
        return bars, 0
    symbols = bars.get_column("symbol").unique().sort().to_list()
    applied, _ = partition_actions(actions_for(symbols, root), prices)
    splits = [
        (symbol, day, ratio)
        for symbol, days in split_ratios(applied).items()
        for day, ratio in days.items()
    ]
    previous = pl.col("close").shift(1).over("symbol")
    if splits:
        ratios = pl.DataFrame(
            splits,
            schema={"symbol": pl.String, "__day": pl.Date, "__ratio": pl.Float64},
            orient="row",
        )
        bars = bars.with_columns(ist_day(pl.col("ts")).alias("__day")).join(
            ratios, on=["symbol", "__day"], how="left", maintain_order="left"
        )
        previous = previous / pl.col("__ratio").fill_null(1.0)
    filled = bars.with_columns(pl.coalesce("prev_close", previous).alias("prev_close"))
    filled = filled.drop("__day", "__ratio", strict=False)
    return filled, before - filled.get_column("prev_close").null_count()


def _aligned(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return frame.select(
        [
            pl.col(c) if c in frame.columns else pl.lit(None, dtype=ALL_COLUMNS[c]).alias(c)
            for c in columns
        ]
    )


def merge_append(
    old: pl.DataFrame, new: pl.DataFrame, *, on_conflict: str, ref: str
) -> tuple[pl.DataFrame, dict[str, int]]:
    """``old`` plus ``new``'s bars; overlapping (symbol, ts) bars must be identical.

    A differing overlap raises ConflictError with a per-symbol summary, unless ``on_conflict``
    is ``replace``: then the new bar wins and the per-symbol counts are returned.
    """
    shared = [c for c in old.columns if c in new.columns and c not in _KEY]
    overlap = old.select(_KEY + shared).join(
        new.select(_KEY + shared), on=_KEY, how="inner", suffix="__new"
    )
    differs = pl.any_horizontal([~pl.col(c).eq_missing(pl.col(f"{c}__new")) for c in shared])
    conflicts = overlap.filter(differs)
    per_symbol = conflicts.group_by("symbol").len().sort("symbol")
    counts = dict(zip(per_symbol["symbol"].to_list(), per_symbol["len"].to_list(), strict=True))
    if counts and on_conflict != "replace":
        first = conflicts.sort(_KEY).row(0, named=True)
        column = next(c for c in shared if first[c] != first[f"{c}__new"])
        listed = ", ".join(f"{s} {n:,}" for s, n in list(counts.items())[:10])
        listed += ", ..." if len(counts) > 10 else ""
        raise ConflictError(
            f"append conflicts with {ref}: {conflicts.height:,} bar(s) differ ({listed}); "
            f"first {first['symbol']} {first['ts']:%Y-%m-%d %H:%M} {column} "
            f"{first[column]} in {ref} vs {first[f'{column}__new']} new; "
            "pass --on-conflict replace to take the new values"
        )
    columns = column_order(list(dict.fromkeys([*old.columns, *new.columns])))
    if on_conflict == "replace":
        parts = [old.join(new.select(_KEY), on=_KEY, how="anti"), new]
    else:
        parts = [old, new.join(old.select(_KEY), on=_KEY, how="anti")]
    merged = pl.concat([_aligned(p, columns) for p in parts])
    return merged.sort(_KEY), counts


def _mixed_prices(kind: str, prices: str, latest: Manifest) -> str:
    """Why bars whose prices are ``prices`` cannot be appended to ``latest``."""
    fix = (
        f"pass --prices {prices_flag(latest.prices)} if these bars are that kind too"
        if takes_prices(kind)
        else f"the {kind} source reads the kind from the file layout"
    )
    return (
        f"cannot append {prices} bars to {latest.ref}, whose prices are {latest.prices}: a "
        f"version holds one kind of prices ({fix}; else ingest into a new dataset)"
    )


def _input_files(paths: Sequence[Path]) -> tuple[InputFile, ...]:
    return tuple(InputFile(str(p), sha256_file(p), p.stat().st_size) for p in paths)


def ingest(
    root: Path,
    name: str,
    kind: str,
    files: Sequence[Path],
    *,
    options: Mapping[str, str],
    interval: str | None = None,
    append: bool = False,
    on_conflict: str = "fail",
    allow_warnings: bool = False,
    drop_duplicates: bool = False,
    on_phase: Callable[[str], None] | None = None,
    symbols: Collection[str] = (),
    extra_notes: Mapping[str, object] | None = None,
    inputs: Sequence[InputFile] | None = None,
) -> IngestReport:
    """Parse ``files`` of source ``kind``, validate, and publish ``name``'s next version.

    ``interval`` defaults to the one inferred from the timestamps; a given one the data
    contradicts, and intraday bars off the interval's grid, are refused. With ``append`` the new
    version holds the latest version's bars plus the new ones (parent = that version), and
    ConflictError when another writer publishes a different version meanwhile.
    ``on_phase`` is called after each of ``PHASES`` (for a progress bar). Raises
    DataError (exit 65) for invalid input, naming the first finding's file and row.

    ``symbols`` (non-empty) keeps only those symbols' bars, before validation. ``extra_notes``
    are added to the manifest's notes, and ``inputs``, when given, are recorded as the version's
    input files instead of ``files`` (a refresh records the downloads it parsed, not the temp
    files it wrote them to).
    """
    from quantcli.store.publish import publish

    phase = on_phase or (lambda _name: None)
    check_name(name)
    if on_conflict not in ON_CONFLICT:
        raise UsageError(f"--on-conflict must be one of {', '.join(ON_CONFLICT)}")
    if interval is not None and interval not in INTERVALS:
        raise UsageError(f"--interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    # The store's calendar (its imported years) decides a synthetic source's sessions and the
    # session windows the interval grid starts from.
    with using_store(root):
        parsed = parse_source(kind, files, options)
        frame = parsed.frame
        if symbols:
            frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
        frame = sort_bars(frame)
        phase("parsed")
        if interval is None:
            interval = infer_interval(frame)
        else:
            check_given_interval(frame, interval)
        check_grid(frame, interval, parsed.files)
    dropped: dict[str, int] = {}
    if drop_duplicates:
        frame, dropped = drop_exact_duplicates(frame)
    report = validate_frame(
        frame, interval=interval, files=parsed.files, root=root, prices=parsed.prices
    )
    phase("validated")
    log.event(
        "dataset.validated",
        rows=frame.height,
        errors=report.errors,
        warnings=report.warnings,
        findings=dict(report.counts),
    )
    refuse_findings(report, frame, allow_warnings=allow_warnings, dropped=drop_duplicates)
    bars = frame.drop(BOOKKEEPING, strict=False)
    notes: dict[str, object] = {**parsed.notes, **(extra_notes or {})}
    if report.counts:
        notes["warnings_accepted"] = dict(report.counts)
    if dropped:
        notes["exact_duplicates_dropped"] = dropped
    parent: int | None = None
    replaced: dict[str, int] = {}
    if append:
        from quantcli.store.reader import open_dataset

        try:
            latest = open_dataset(name, root)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{exc.message}; --append needs an existing dataset (ingest without --append)"
            ) from None
        if latest.manifest.interval != interval:
            raise ConflictError(
                f"cannot append {interval} bars to {latest.manifest.ref}, which holds "
                f"{latest.manifest.interval} bars"
            )
        if latest.manifest.prices != parsed.prices:
            raise ConflictError(_mixed_prices(kind, parsed.prices, latest.manifest))
        bars, replaced = merge_append(
            latest.frame(), bars, on_conflict=on_conflict, ref=latest.manifest.ref
        )
        parent = latest.version
        if replaced:
            notes["conflicts_replaced"] = replaced
    if interval == "1d":
        bars, derived = fill_prev_close(bars, root, parsed.prices)
        if derived:
            notes["prev_close_derived"] = derived
    recorded = _input_files(parsed.inputs) if inputs is None else tuple(inputs)
    source = SourceInfo(kind=kind, files=recorded, options=dict(options))
    # A fresh ingest replaces the content and reads nothing first, so it needs no guard: under
    # the lock publish compares it with whatever is latest (a re-run stays "unchanged"). An
    # append was built from `parent` and must not land on a version published since.
    result = publish(
        root,
        name,
        bars,
        interval=interval,
        source=source,
        parent=parent,
        notes=notes or None,
        prices=parsed.prices,
        expect_latest=parent,
    )
    phase("published")
    manifest = result.manifest
    return IngestReport(
        name=manifest.name,
        version=manifest.version,
        created=result.created,
        parent=manifest.parent,
        interval=manifest.interval,
        rows=manifest.rows,
        input_rows=parsed.frame.height,
        symbols=len(manifest.symbols),
        content_hash=manifest.content_hash,
        validation=report,
        conflicts_replaced=replaced,
        duplicates_dropped=dropped,
        ignored_columns=parsed.ignored_columns,
        prices=manifest.prices,
    )
