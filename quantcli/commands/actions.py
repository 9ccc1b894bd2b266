"""`quantcli actions` commands: the corporate-actions table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quantcli.output import emit, info, settings_of, table, warn

app = typer.Typer(
    help="Corporate actions (splits, bonuses, dividends).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="NSE corporate-actions CSV export.")],
) -> None:
    """Validate FILE and merge it into the store's table (<root>/_meta/corporate_actions.csv)."""
    from quantcli.market.corporate_actions import import_actions

    settings = settings_of(ctx)
    result = import_actions(settings.root, file)
    for row in result.skipped:
        warn(settings, f"{file}:{row.row}: {row.symbol}: skipped unknown purpose {row.purpose!r}")
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
