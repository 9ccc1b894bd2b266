"""`quantcli backtest walkforward`: optimise a grid on rolling (or anchored) training windows,
trade the best combination on each following test window, and report the stitched result.

Dask, polars and the engine are imported inside the function, so `--help` stays fast.
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
    FillOption,
    FromOption,
    MarginOption,
    ParticipationOption,
    RiskFreeOption,
    SeedOption,
    SegmentOption,
    ShortOption,
    SlippageOption,
    SymbolsOption,
    ToOption,
    run_config,
)
from quantcli.commands.sweep import (
    GridOption,
    SchedulerOption,
    WhereOption,
    WorkersOption,
    _cell,
)
from quantcli.output import JsonOption, emit, info, progress, settings_of, table, warn

if TYPE_CHECKING:
    from rich.console import Console

# The out-of-sample summary rows of the report, in order.
SUMMARY = (
    "total_return",
    "cagr",
    "sharpe",
    "probabilistic_sharpe",
    "deflated_sharpe",
    "combinations",
    "max_drawdown",
    "trades",
    "sessions",
    "final_equity",
)


def walkforward(
    ctx: typer.Context,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset reference: NAME or NAME@version.")
    ],
    strategy: Annotated[
        str,
        typer.Option("--strategy", "-s", help="sma_cross, momentum, ... or path/to/file.py:Class."),
    ],
    train: Annotated[
        str,
        typer.Option("--train", help="Training span: 3y, 18m, 26w (calendar) or 500s (sessions)."),
    ],
    test: Annotated[str, typer.Option("--test", help="Test span, as --train (e.g. 6m).")],
    params: GridOption = None,
    where: WhereOption = None,
    anchored: Annotated[
        bool,
        typer.Option("--anchored", help="Train from the first session (default: a rolling span)."),
    ] = False,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain", help="With --strategy model: retrain the model on each training window."
        ),
    ] = False,
    metric: Annotated[
        str, typer.Option("--metric", help="The metric that picks each window's best (sharpe).")
    ] = "sharpe",
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
    """Walk a grid forward: optimise on each training window, trade the next test window,
    save the result under <root>/walkforwards/<id>/."""
    settings = settings_of(ctx, json_output)
    from quantcli.sweep.grid import parse_grid
    from quantcli.sweep.results import check_metric
    from quantcli.sweep.runner import Cluster
    from quantcli.sweep.walkforward import execute_walkforward, parse_span

    spans = parse_span(train, "--train"), parse_span(test, "--test")
    grid = parse_grid(params or [], where)
    check_metric(metric)
    cluster = Cluster.resolve(workers=workers, scheduler=scheduler)
    config = run_config(ctx.params)
    with progress(settings, "walk-forward", total=None) as advance:
        saved = execute_walkforward(
            config,
            grid,
            train=spans[0],
            test=spans[1],
            anchored=anchored,
            metric=metric,
            retrain=retrain,
            root=settings.root,
            cluster=cluster,
            progress=advance,
            planned=lambda combinations: advance(0, total=combinations),
        )
    info(settings, f"{'unchanged: ' if saved.unchanged else 'saved '}{saved.path}")
    for line in saved.manifest.get("warnings", []):
        warn(settings, line)
    manifest = saved.manifest
    payload: dict[str, Any] = {
        "walkforward_id": saved.wf_id,
        "path": str(saved.path),
        "unchanged": saved.unchanged,
        "metric": metric,
        "options": manifest["walkforward"],
        "windows": saved.windows.to_dicts(),
        "stability": manifest["stability"],
        "oos": manifest["oos"],
        "models": manifest["models"],
    }

    def render(console: Console) -> None:
        # The terminal's table keeps what fits; --json and windows.parquet have every column.
        params = list(manifest["grid"]["params"])
        if manifest["models"]:
            params = [p for p in params if p != "model"] + ["retrained"]
        shown = [
            *params,
            *dict.fromkeys((f"is_{metric}", f"oos_{metric}", "oos_total_return", "oos_trades")),
        ]
        columns = ["window", "train", "test", "K", *shown]
        rows = [
            [
                str(row["window"]),
                f"{row['train_from']}..{row['train_to']}",
                f"{row['test_from']}..{row['test_to']}{' (partial)' if row['partial'] else ''}",
                str(row["K"]),
                *(_cell(row[c]) for c in shown),
            ]
            for row in saved.windows.iter_rows(named=True)
        ]
        console.print(table(f"{saved.wf_id}: {len(rows)} windows", columns, rows))
        stab = manifest["stability"]
        lines = [
            ["best combination changes", f"{stab['changes']} of {max(0, stab['windows'] - 1)}"],
            ["distinct best combinations", str(stab["distinct_combos"])],
        ]
        for name, entry in stab["params"].items():
            spread = f", spread {_cell(entry['spread'])}" if "spread" in entry else ""
            lines.append(
                [
                    name,
                    f"{entry['distinct']} values, mostly {entry['most_common']} "
                    f"({entry['share']:.0%}){spread}",
                ]
            )
        console.print(table("parameter stability", ["", "value"], lines))
        oos = manifest["oos"]
        console.print(
            table(
                "stitched out of sample",
                ["metric", "value"],
                [[name, _cell(oos.get(name))] for name in SUMMARY],
            )
        )

    emit(settings, payload, render)
