"""`quantcli backtest sweep`: run a parameter grid (no sub-command), and `sweep show` a saved one.

Dask, polars and the engine are imported inside the functions, so `--help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.commands.run_options import (
    BROKER,
    CASH,
    COSTS,
    FILL,
    MARGIN,
    PARTICIPATION,
    SEGMENT,
    SLIPPAGE,
    BrokerOption,
    CashOption,
    CostsOption,
    DatasetOption,
    FillOption,
    FromOption,
    MarginOption,
    ParticipationOption,
    RiskFreeOption,
    SeedOption,
    SegmentOption,
    ShortOption,
    SlippageOption,
    StrategyOption,
    SymbolsOption,
    ToOption,
    run_config,
)
from quantcli.errors import UsageError
from quantcli.output import JsonOption, emit, info, progress, settings_of, table, warn

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

MetricOption = Annotated[
    str, typer.Option("--metric", help="The metric that ranks the combinations (e.g. sharpe).")
]
TopOption = Annotated[int, typer.Option("--top", help="How many of the best combinations to show.")]
# The grid and cluster options of every command that runs a grid (sweep, walk-forward).
GridOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", "-p", help="NAME=a:b:step (inclusive range), NAME=a,b,c or NAME=VALUE."
    ),
]
WhereOption = Annotated[
    str | None,
    typer.Option("--where", help='Keep the combinations where this holds, e.g. "fast < slow".'),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", help="Local Dask worker processes (default: one per core)."),
]
SchedulerOption = Annotated[
    str | None, typer.Option("--scheduler", help="An existing Dask scheduler, tcp://HOST:PORT.")
]
# The columns of the top-N table besides K and the parameters.
SHOWN = ("sharpe", "total_return", "max_drawdown", "trades")


@app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    strategy: StrategyOption = None,
    params: GridOption = None,
    where: WhereOption = None,
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
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    symbols: SymbolsOption = None,
    start: FromOption = None,
    end: ToOption = None,
    cash: CashOption = CASH,
    segment: SegmentOption = SEGMENT,
    broker: BrokerOption = BROKER,
    costs: CostsOption = COSTS,
    slippage: SlippageOption = SLIPPAGE,
    fill: FillOption = FILL,
    participation: ParticipationOption = PARTICIPATION,
    short: ShortOption = False,
    margin: MarginOption = MARGIN,
    seed: SeedOption = 0,
    risk_free: RiskFreeOption = 0.0,
    json_output: JsonOption = False,
) -> None:
    """Backtest every combination of a grid and save it under <root>/sweeps/<sweep-id>/."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx, json_output)
    if dataset is None or strategy is None:
        raise UsageError("backtest sweep needs --dataset, --strategy and -p (or a sub-command)")
    from quantcli.sweep.grid import parse_grid
    from quantcli.sweep.results import check_metric, execute_sweep, ranked
    from quantcli.sweep.runner import Cluster

    grid = parse_grid(params or [], where)
    check_metric(metric)
    if top < 1:
        raise UsageError(f"--top must be 1 or more, got {top}")
    cluster = Cluster.resolve(workers=workers, scheduler=scheduler, remote=remote)
    config = run_config(ctx.params)
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
    settings = settings_of(ctx, json_output)
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
