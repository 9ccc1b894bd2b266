"""`quantcli backtest sweep`: run a parameter grid (no sub-command), and `sweep show` a saved one.

Dask, polars and the engine are imported inside the functions, so `--help` stays fast.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.core.dates import parse_date
from quantcli.errors import UsageError
from quantcli.output import emit, info, progress, settings_of, table, warn

if TYPE_CHECKING:
    import polars as pl
    from rich.console import Console

    from quantcli.settings import Settings
    from quantcli.sweep.results import Sweep

app = typer.Typer(
    help="Run a parameter grid (options below), or show a saved sweep.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
MetricOption = Annotated[
    str, typer.Option("--metric", help="The metric that ranks the combinations (e.g. sharpe).")
]
TopOption = Annotated[int, typer.Option("--top", help="How many of the best combinations to show.")]
# The columns of the top-N table besides K and the parameters.
SHOWN = ("sharpe", "total_return", "max_drawdown", "trades")


def _settings(ctx: typer.Context, json_output: bool) -> Settings:
    settings = settings_of(ctx)
    return dataclasses.replace(settings, json=True) if json_output else settings


@app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset reference: NAME or NAME@version.")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option("--strategy", "-s", help="sma_cross, momentum, ... or path/to/file.py:Class."),
    ] = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param", "-p", help="NAME=a:b:step (inclusive range), NAME=a,b,c or NAME=VALUE."
        ),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option("--where", help='Keep the combinations where this holds, e.g. "fast < slow".'),
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(
            "--remote",
            help="Cluster workers read the pinned dataset version from this remote (pushed "
            "first) instead of being sent the bars.",
        ),
    ] = None,
    metric: MetricOption = "sharpe",
    top: TopOption = 10,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Local Dask worker processes (default: one per core)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="An existing Dask scheduler, tcp://HOST:PORT."),
    ] = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Comma-separated symbols (default: all).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="First date YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last date YYYY-MM-DD.")] = None,
    cash: Annotated[float, typer.Option("--cash", help="Initial cash in Rs.")] = 1_000_000.0,
    segment: Annotated[
        str, typer.Option("--segment", help="delivery | intraday | futures | options.")
    ] = "delivery",
    broker: Annotated[
        str, typer.Option("--broker", help="Broker profile name or TOML file.")
    ] = "zerodha",
    costs: Annotated[
        str, typer.Option("--costs", help="statutory, or flat:PCT% (e.g. flat:0.05%).")
    ] = "statutory",
    slippage: Annotated[
        str, typer.Option("--slippage", help="none | bps:5 | spread:10 | sqrt:0.1.")
    ] = "none",
    fill: Annotated[
        str, typer.Option("--fill", help="open (next bar's open) or close (same bar).")
    ] = "open",
    participation: Annotated[
        float, typer.Option("--participation", help="Max share of a bar's volume, in (0, 1].")
    ] = 0.10,
    short: Annotated[bool, typer.Option("--short", help="Allow short positions.")] = False,
    margin: Annotated[
        float, typer.Option("--margin", help="Margin fraction of notional (leveraged segments).")
    ] = 0.20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    risk_free: Annotated[
        float, typer.Option("--risk-free", help="Annual risk-free rate for Sharpe/Sortino.")
    ] = 0.0,
    json_output: JsonOption = False,
) -> None:
    """Backtest every combination of a grid and save it under <root>/sweeps/<sweep-id>/."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx, json_output)
    if dataset is None or strategy is None:
        raise UsageError("backtest sweep needs --dataset, --strategy and -p (or a sub-command)")
    from quantcli.backtest.config import BacktestConfig, Fill, choice
    from quantcli.commands.backtest import parse_symbols
    from quantcli.market.segments import Segment
    from quantcli.sweep.grid import parse_grid
    from quantcli.sweep.results import check_metric, execute_sweep, ranked
    from quantcli.sweep.runner import Cluster

    grid = parse_grid(params or [], where)
    check_metric(metric)
    if top < 1:
        raise UsageError(f"--top must be 1 or more, got {top}")
    cluster = Cluster.resolve(workers=workers, scheduler=scheduler, remote=remote)
    config = BacktestConfig(
        dataset=dataset,
        strategy=strategy,
        symbols=parse_symbols(symbols),
        start=parse_date(start, "--from"),
        end=parse_date(end, "--to"),
        cash=cash,
        segment=choice(Segment, segment, "segment"),
        broker=broker,
        costs=costs,
        slippage=slippage,
        fill=choice(Fill, fill, "fill"),
        participation=participation,
        allow_short=short,
        margin=margin,
        seed=seed,
        risk_free=risk_free,
    )
    total = len(grid.combos)
    with progress(settings, f"sweep of {total:,} combinations", total=total) as advance:
        saved = execute_sweep(config, grid, root=settings.root, cluster=cluster, progress=advance)
    order = ranked(saved.results, metric)
    if saved.unchanged:
        info(settings, f"unchanged: {saved.path} already holds this sweep")
    else:
        info(settings, f"saved {saved.path}")
    for line in saved.manifest.get("warnings", []):
        warn(settings, line)
    _emit_top(settings, saved, order, metric, top)


def _emit_top(settings: Settings, saved: Sweep, order: pl.DataFrame, metric: str, top: int) -> None:
    best = order.head(top)
    payload = {
        "sweep_id": saved.sweep_id,
        "path": str(saved.path),
        "unchanged": saved.unchanged,
        "combinations": saved.results.height,
        "metric": metric,
        "top": best.to_dicts(),
    }

    def render(console: Console) -> None:
        columns = ["K", *saved.params, *dict.fromkeys((metric, *SHOWN))]
        rows = [
            [_cell(row[c]) for c in columns] for row in best.select(columns).iter_rows(named=True)
        ]
        title = f"{saved.sweep_id}: top {best.height} of {saved.results.height:,} by {metric}"
        console.print(table(title, columns, rows))

    emit(settings, payload, render)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


@app.command()
def show(
    ctx: typer.Context,
    sweep_ref: Annotated[str, typer.Argument(metavar="ID", help="Sweep id or id prefix.")],
    combo: Annotated[
        int | None, typer.Option("--combo", help="Show combination K (its full metrics).")
    ] = None,
    save: Annotated[
        bool,
        typer.Option("--save", help="With --combo: save it as a normal backtest run."),
    ] = False,
    metric: MetricOption = "sharpe",
    top: TopOption = 10,
    runs_dir: Annotated[
        str | None,
        typer.Option("--runs-dir", help="Where --save saves the run (default: as backtest)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show a saved sweep's best combinations, or one combination (and save it as a run)."""
    settings = _settings(ctx, json_output)
    from quantcli.settings import resolve_runs_dir
    from quantcli.sweep.results import check_metric, find_sweep, ranked

    check_metric(metric)
    if save and combo is None:
        raise UsageError("--save needs --combo K: the combination to save as a run")
    saved = find_sweep(settings.root, sweep_ref)
    if combo is None:
        _emit_top(settings, saved, ranked(saved.results, metric), metric, top)
        return
    config = saved.config(combo, settings.root)
    row = saved.results.row(combo, named=True)
    payload: dict[str, Any] = {"sweep_id": saved.sweep_id, "K": combo, "row": row}
    if save:
        from quantcli.backtest.runs import execute

        runs = resolve_runs_dir(runs_dir, settings.root)
        run = execute(config, root=settings.root, runs_dir=runs)
        payload.update(run_id=run.run_id, run_dir=str(run.path), unchanged=run.unchanged)
        info(settings, f"{'unchanged' if run.unchanged else 'saved'} {run.path}")

    def render(console: Console) -> None:
        rows = [(name, _cell(value)) for name, value in row.items()]
        console.print(table(f"{saved.sweep_id} combination {combo}", ["field", "value"], rows))

    emit(settings, payload, render)
