"""`quantcli actions` commands: the corporate-actions table."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from quantcli.output import emit, info, settings_of, table

app = typer.Typer(
    help="Corporate actions (splits, bonuses, dividends).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="NSE corporate-actions CSV export.")],
    skip_rights: Annotated[
        bool,
        typer.Option(
            "--skip-rights",
            help="Skip rights issues (not modelled; prices keep their ex-rights gap) instead of "
            "refusing the file.",
        ),
    ] = False,
) -> None:
    """Validate FILE and merge it into the store's table (<root>/_meta/corporate_actions.csv).

    Splits, bonuses and dividends are imported; purposes that adjust no price (AGM, EGM,
    buyback, ...) are skipped and counted; a PURPOSE that cannot be read, or a rights issue
    without --skip-rights, refuses the whole file (exit 65, its line named).
    """
    from quantcli.market.corporate_actions import import_actions

    settings = settings_of(ctx)
    result = import_actions(settings.root, file, skip_rights=skip_rights)
    reasons = Counter(reason for row in result.skipped for reason in row.reason.split(", "))
    if reasons:
        listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        info(settings, f"skipped {len(result.skipped)} row(s) that adjust no price ({listed})")
    info(
        settings,
        f"imported {result.added} row(s), {result.duplicates} already present; "
        f"{result.total} in {result.table}",
    )
    emit(
        settings,
        result.to_dict(),
        lambda console: console.print(
            f"{result.added} added, {result.duplicates} duplicate(s), "
            f"{len(result.skipped)} skipped, {result.total} total",
            highlight=False,
            markup=False,
        ),
    )


@app.command("list")
def list_actions(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Symbols to show (default: all).")
    ] = None,
) -> None:
    """List the bundled and imported corporate actions."""
    from quantcli.market.corporate_actions import actions_for

    settings = settings_of(ctx)
    actions = actions_for(symbols or None, settings.root)
    rows = [[a.symbol, a.ex_date.isoformat(), a.kind, a.ratio, a.amount] for a in actions]
    emit(
        settings,
        [a.to_dict() for a in actions],
        lambda console: console.print(
            table("Corporate actions", ["symbol", "ex_date", "kind", "ratio", "amount"], rows)
        ),
    )


def rederive(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Daily dataset, e.g. NAME (its latest version).")],
) -> None:
    """Re-derive prev_close values made stale by corporate actions imported after ingest.

    Publishes a new version (parent = the old one, which is unchanged); nothing when no value
    is stale. `data validate` flags such values as stale_prev_close.
    """
    from quantcli.store.validate import rederive_prev_close

    settings = settings_of(ctx)
    report = rederive_prev_close(settings.root, ref)
    line = (
        f"created {report.created}: re-derived {report.rederived:,} prev_close value(s) of "
        f"{report.ref}"
        if report.created
        else f"unchanged: no stale prev_close in {report.ref}"
    )
    emit(
        settings,
        report.to_dict(),
        lambda console: console.print(line, highlight=False, markup=False),
    )
