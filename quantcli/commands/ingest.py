"""`quantcli data ingest` and `quantcli data validate`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from quantcli.errors import DataError, UsageError
from quantcli.output import emit, info, progress, settings_of, table, warn

if TYPE_CHECKING:
    from rich.console import Console


def _options(**given: str | int | None) -> dict[str, str]:
    return {k: str(v) for k, v in given.items() if v is not None}


def _maps(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        source, sep, target = pair.rpartition("=")
        if not sep or not source or not target:
            raise UsageError(f"--map {pair!r}: expected SOURCE=canonical, e.g. 'Close Price=close'")
        out[f"map.{source}"] = target
    return out


def ingest(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    files: Annotated[
        list[Path] | None, typer.Argument(help="Input files (none for --source synthetic).")
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--source", help="Input kind: csv, parquet, nifty50, bhavcopy, yahoo or synthetic."
        ),
    ] = "csv",
    interval: Annotated[
        str | None,
        typer.Option(help="Bar interval (1m, 5m, 15m, 1h, 1d); default: inferred from the data."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="Column mapping SOURCE=canonical, repeatable: --map 'Close Price=close'."
        ),
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option(help="strftime format of the date column (default: ISO, DD-MM-YYYY)."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="Zone of naive timestamps (default Asia/Kolkata).")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Symbol of single-symbol files (default: file name).")
    ] = None,
    symbol_column: Annotated[
        str | None, typer.Option(help="csv/parquet: the column holding each row's symbol.")
    ] = None,
    skip_rows: Annotated[
        int | None,
        typer.Option(help="csv: extra header rows under the column names to skip (default 0)."),
    ] = None,
    volume_optional: Annotated[
        bool,
        typer.Option(
            "--volume-optional",
            help="Store empty or absent volume as 0 (index files); counted in the manifest.",
        ),
    ] = False,
    delimiter: Annotated[
        str | None, typer.Option(help="CSV field delimiter (default ',').")
    ] = None,
    prices: Annotated[
        str | None,
        typer.Option(
            help="csv/parquet/nifty50: raw, split-adjusted or total-return-adjusted: what the "
            "vendor already adjusted the prices for; no split is applied again (default raw)."
        ),
    ] = None,
    series: Annotated[
        str | None,
        typer.Option(help="bhavcopy series to keep, comma-separated or ALL (default EQ)."),
    ] = None,
    symbols: Annotated[int | None, typer.Option(help="synthetic: number of symbols (50).")] = None,
    days: Annotated[int | None, typer.Option(help="synthetic: sessions per symbol (5000).")] = None,
    seed: Annotated[int | None, typer.Option(help="synthetic: random seed (42).")] = None,
    end: Annotated[
        str | None, typer.Option(help="synthetic: last session date (default: calendar end).")
    ] = None,
    append: Annotated[
        bool, typer.Option("--append", help="Add the bars to the latest version's.")
    ] = False,
    on_conflict: Annotated[
        str,
        typer.Option(help="With --append: 'fail' on differing overlapping bars, or 'replace'."),
    ] = "fail",
    allow_warnings: Annotated[
        bool, typer.Option("--allow-warnings", help="Publish despite warning-level findings.")
    ] = False,
    drop_duplicates: Annotated[
        bool,
        typer.Option(
            "--drop-duplicates", help="Drop bars repeated exactly (differing repeats still fail)."
        ),
    ] = False,
) -> None:
    """Ingest market data into a new dataset version (nothing is written if the data is bad)."""
    from quantcli.store.ingest import PHASES
    from quantcli.store.ingest import ingest as run_ingest
    from quantcli.store.manifest import RAW, describe_prices

    settings = settings_of(ctx)
    options = {
        **_maps(mapping or []),
        **_options(
            date_format=date_format,
            timezone=timezone,
            symbol=symbol,
            symbol_column=symbol_column,
            skip_rows=skip_rows,
            volume_optional="true" if volume_optional else None,
            delimiter=delimiter,
            prices=prices,
            series=series,
            symbols=symbols,
            days=days,
            seed=seed,
            end=end,
        ),
    }
    with progress(settings, f"ingesting {name}", total=len(PHASES)) as advance:
        report = run_ingest(
            settings.root,
            name,
            source,
            files or [],
            options=options,
            interval=interval,
            append=append,
            on_conflict=on_conflict,
            allow_warnings=allow_warnings,
            drop_duplicates=drop_duplicates,
            on_phase=lambda _phase: advance(1),
        )
    shown: set[str] = set()
    for finding in report.validation.findings:  # the first of each accepted check, with a count
        if finding.check not in shown:
            shown.add(finding.check)
            more = report.validation.counts[finding.check] - 1
            warn(settings, finding.line() + (f" (and {more:,} more)" if more else ""))
    for sym, count in report.duplicates_dropped.items():
        warn(settings, f"{sym}: dropped {count:,} exactly repeated bar(s)")
    for sym, count in report.conflicts_replaced.items():
        warn(settings, f"{sym}: replaced {count:,} conflicting bar(s)")
    if report.ignored_columns:
        info(settings, f"ignored column(s): {', '.join(report.ignored_columns)}")

    def render(console: Console) -> None:
        if report.created:
            console.print(
                f"created {report.ref}: {report.rows:,} rows, {report.symbols:,} "
                f"symbol{'' if report.symbols == 1 else 's'}, "
                f"{report.interval} bars (content {report.content_hash[:12]})"
                + ("" if report.prices == RAW else f", prices {describe_prices(report.prices)}")
            )
        else:
            console.print(f"unchanged, v{report.version} (same content as {report.ref})")

    emit(settings, report.to_dict(), render)


def validate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Dataset reference, e.g. NAME or NAME@v3.")],
    split_threshold: Annotated[
        float | None,
        typer.Option(help="Overnight move flagged as a suspected split (default 0.35 = 35%)."),
    ] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Findings listed per check (default 20).")
    ] = None,
) -> None:
    """Validate a dataset version; exit 65 when it has error-level findings."""
    from quantcli.store import validate as checks
    from quantcli.store.reader import open_dataset

    settings = settings_of(ctx)
    dataset = open_dataset(ref, settings.root)
    report = checks.validate_frame(
        dataset.frame(),
        interval=dataset.manifest.interval,
        root=settings.root,
        split_threshold=split_threshold or checks.DEFAULT_SPLIT_THRESHOLD,
        max_examples=max_examples or checks.DEFAULT_MAX_EXAMPLES,
        prices=dataset.manifest.prices,
    )
    pinned = dataset.manifest.ref
    rows = [
        (
            f.severity,
            f.check,
            f.symbol or "",
            checks.show_ts(f.ts, dataset.manifest.interval),
            f.message,
        )
        for f in report.findings
    ]

    def render(console: Console) -> None:
        if rows:
            console.print(table(pinned, ["severity", "check", "symbol", "ts", "message"], rows))
        summary = report.summary() or "no findings"
        console.print(f"{pinned}: {report.rows:,} rows, {report.symbols:,} symbols: {summary}")

    failed = DataError(f"{pinned}: {report.errors:,} error-level finding(s): {report.summary()}")
    emit(settings, {"ref": pinned, **report.to_dict()}, render, error=None if report.ok else failed)
