"""`quantcli data recipe set/show` and `quantcli data refresh`: keeping a dataset current."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.output import JsonOption, emit, settings_of, table

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console

    from quantcli.ops.refresh import ProviderStats

recipe_app = typer.Typer(
    help="A dataset's refresh recipe: its source kind, providers and filters.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def matrix_rows(matrix: Mapping[str, ProviderStats]) -> list[list[Any]]:
    """The provider matrix as table rows (provider, attempts, ok, failed, served, mean s)."""
    rows: list[list[Any]] = []
    for label, stats in sorted(matrix.items()):
        d = stats.to_dict()
        mean = d["latency_s_mean"]
        rows.append(
            [
                label,
                d["attempts"],
                d["successes"],
                d["failures"],
                d["sessions_served"],
                "-" if mean is None else f"{mean:.3f}",
            ]
        )
    return rows


MATRIX_COLUMNS = ["provider", "attempts", "ok", "failed", "sessions served", "mean latency s"]


@recipe_app.command("set")
def recipe_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="bhavcopy-legacy, bhavcopy-udiff (the layout served) or csv (canonical columns).",
        ),
    ],
    provider: Annotated[
        list[str],
        typer.Option(
            "--provider",
            help="A URL template ({date:%Y%m%d}, {MON}) or a drop directory; repeat for "
            "fallbacks, tried in order.",
        ),
    ],
    series: Annotated[
        str | None,
        typer.Option(help="bhavcopy series to keep, comma-separated or ALL (default EQ)."),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Keep only these symbols, comma-separated (default all).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First session to fetch while the dataset has no version (YYYY-MM-DD)."),
    ] = None,
    allow_warnings: Annotated[
        bool,
        typer.Option(
            "--allow-warnings", help="Publish refreshed bars despite warning-level findings."
        ),
    ] = False,
) -> None:
    """Set (or replace) the recipe `data refresh` fetches a dataset's missing sessions with."""
    from quantcli.core.dates import parse_date
    from quantcli.ops.recipe import make_recipe, save_recipe

    settings = settings_of(ctx)
    recipe = make_recipe(
        name,
        source,
        provider,
        series=series,
        symbols=symbols,
        start=parse_date(start, "--start"),
        allow_warnings=allow_warnings,
    )
    save_recipe(settings.root, recipe)
    count = len(recipe.providers)
    message = f"recipe for {name}: {source} from {count} provider{'' if count == 1 else 's'}"
    emit(settings, recipe.public(), lambda c: c.print(message, highlight=False))


@recipe_app.command("show")
def recipe_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    json_output: JsonOption = False,
) -> None:
    """Show a dataset's recipe (providers by their redacted labels) and its provider matrix."""
    from quantcli.ops.recipe import load_recipe
    from quantcli.ops.refresh import read_matrix

    settings = settings_of(ctx, json_output)
    recipe = load_recipe(settings.root, name)
    matrix = read_matrix(settings.root, name)
    public = recipe.public()
    payload = {
        **public,
        "provider_matrix": {k: v.to_dict() for k, v in sorted(matrix.items())},
    }

    def render(console: Console) -> None:
        facts = [
            ["source", recipe.source],
            *([f"provider {i}", label] for i, label in enumerate(public["providers"], start=1)),
            ["series", public["series"] or "-"],
            ["symbols", ", ".join(recipe.symbols) or "all"],
            ["start", public["start"] or "-"],
            ["allow warnings", "yes" if recipe.allow_warnings else "no"],
        ]
        console.print(table(f"recipe for {name}", ["field", "value"], facts))
        if matrix:
            console.print(table("providers", MATRIX_COLUMNS, matrix_rows(matrix)))

    emit(settings, payload, render)


def refresh(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name (it must have a recipe).")],
    until: Annotated[
        str | None,
        typer.Option(help="Last session to fetch (default: the last completed session)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List the sessions and providers; fetch nothing."),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Fetch the sessions a dataset is missing and publish them as one new version.

    Exit 0 done or up to date, 65 bad data, 69 providers unavailable, 75 another refresh
    holds the lock.
    """
    from quantcli.core.dates import parse_date
    from quantcli.ops.refresh import refresh as run_refresh
    from quantcli.ops.run import fetch_options

    settings = settings_of(ctx, json_output)
    report = run_refresh(
        settings.root,
        name,
        until=parse_date(until, "--until"),
        dry_run=dry_run,
        **fetch_options(settings, ctx.meta),
    )
    plan = report.plan

    def render(console: Console) -> None:
        if report.up_to_date:
            bars = "no bars" if plan.after is None else f"last bar {plan.after}"
            console.print(
                f"{name} is up to date ({bars}; last session to fetch {plan.until})",
                highlight=False,
            )
            return
        first, last = plan.sessions[0], plan.sessions[-1]
        span = f"{len(plan.sessions):,} session(s) {first}..{last}"
        if report.dry_run:
            console.print(f"would fetch {span} for {name} from, in order:", highlight=False)
            for label in report.providers:
                console.print(f"  {label}", highlight=False)
            for day in plan.sessions:
                console.print(day.isoformat(), highlight=False)
            return
        console.print(
            f"published {name}@v{report.version}: {span}, {report.rows_added:+,} rows "
            f"({report.rows:,} in all)",
            highlight=False,
        )
        console.print(table("providers", MATRIX_COLUMNS, matrix_rows(report.matrix)))

    emit(settings, report.to_dict(), render)
