"""`quantcli backtest`: run a backtest (no sub-command), `reproduce`, `list` and `show` runs.

Heavy libraries (polars, numba, ...) are imported inside the functions so `--help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
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
from quantcli.settings import resolve_runs_dir

if TYPE_CHECKING:
    from rich.console import Console

    from quantcli.backtest.runs import Run

app = typer.Typer(
    help="Run a backtest (options below), or reproduce, list and show saved runs.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RunsDirOption = Annotated[
    str | None,
    typer.Option(
        "--runs-dir",
        help="Directory of saved runs (default: quantcli.toml's [runs] dir, else <root>/runs).",
    ),
]


def parse_params(pairs: list[str]) -> dict[str, str]:
    """``-p name=value`` flags as a mapping (values stay strings; the strategy types them)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-p {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _fractions(advance: Callable[[float], None]) -> Callable[[float], None]:
    """Adapt the engine's progress (fraction done so far) to a bar's ``advance(delta)``."""
    done = 0.0

    def report(fraction: float) -> None:
        nonlocal done
        if fraction > done:
            advance(fraction - done)
            done = fraction

    return report


def _runs_dir(ctx: typer.Context, option: str | None) -> Path:
    """A sub-command's ``--runs-dir``, else the one given to ``backtest``, else the default
    beside the store (quantcli.settings.resolve_runs_dir)."""
    parent = ctx.parent.params.get("runs_dir") if ctx.parent is not None else None
    return resolve_runs_dir(option or parent, settings_of(ctx).root)


@app.callback(invoke_without_command=True)
def backtest(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    strategy: StrategyOption = None,
    params: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Strategy parameter NAME=VALUE.")
    ] = None,
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
    on_reject: Annotated[
        str, typer.Option("--on-reject", help="record (keep rejected orders) or error (stop).")
    ] = "record",
    seed: SeedOption = 0,
    risk_free: RiskFreeOption = 0.0,
    allow_overlap: Annotated[
        bool,
        typer.Option(
            "--allow-overlap",
            help="Let the model strategy trade sessions its model was trained on (recorded).",
        ),
    ] = False,
    runs_dir: RunsDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run a backtest and save it under RUNS_DIR/<run-id>/ (manifest, Parquet, metrics, report)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx, json_output)
    if dataset is None or strategy is None:
        raise UsageError("backtest needs --dataset and --strategy (or a sub-command)")
    from quantcli.backtest.config import OnReject, choice
    from quantcli.backtest.runs import execute

    config = run_config(
        ctx.params,
        params=parse_params(params or []),
        on_reject=choice(OnReject, on_reject, "on_reject"),
        allow_overlap=allow_overlap,
    )
    with progress(settings, "backtest", total=1.0) as advance:
        run = execute(
            config,
            root=settings.root,
            runs_dir=_runs_dir(ctx, runs_dir),
            progress=_fractions(advance),
        )
    if run.unchanged:
        info(settings, f"unchanged: {run.path} already holds this run, byte-identical")
    else:
        info(settings, f"saved {run.path}")
    warnings = list(run.manifest.warnings)
    for line in warnings:
        warn(settings, line)
    metrics = run.metrics()
    payload = {
        **metrics,
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "unchanged": run.unchanged,
        "warnings": warnings,
    }
    emit(settings, payload, lambda console: _render_metrics(console, run.run_id, metrics))


def _render_metrics(console: Console, title: str, metrics: dict[str, Any]) -> None:
    from quantcli.backtest.report import METRIC_ROWS, fmt
    from quantcli.market.charges import CHARGE_COMPONENTS

    rows = [(label, fmt(metrics.get(key), kind)) for key, label, kind in METRIC_ROWS]
    rows += [
        (f"charges: {name}", fmt(metrics.get(f"charges_{name}"), "money"))
        for name in (*CHARGE_COMPONENTS, "total")
    ]
    console.print(table(title, ["metric", "value"], rows))


@app.command()
def reproduce(
    ctx: typer.Context,
    run_dir: Annotated[str, typer.Argument(help="A run directory (or run id).")],
    runs_dir: RunsDirOption = None,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="Fetch what the run pinned (dataset; a model's version, feature set and "
            "dataset) from a remote first if missing.",
        ),
    ] = False,
    remote: Annotated[
        str | None, typer.Option("--remote", help="The remote --pull uses (default: the only one).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Re-run a saved run from its manifest and check every output is byte-identical."""
    settings = settings_of(ctx, json_output)
    from quantcli.backtest.runs import find_run
    from quantcli.backtest.runs import reproduce as reproduce_run
    from quantcli.store.remotes import get_remote

    if remote is not None and not pull:
        raise UsageError("--remote applies with --pull")
    source = get_remote(settings.root, remote) if pull else None
    run = find_run(_runs_dir(ctx, runs_dir), run_dir)
    with progress(settings, f"reproduce {run.run_id}", total=1.0) as advance:
        outcome = reproduce_run(
            run.path, root=settings.root, progress=_fractions(advance), remote=source
        )
    payload = {
        "run_id": outcome.run_id,
        "ok": outcome.ok,
        "identical": list(outcome.identical),
        "different": list(outcome.different),
        "metric_keys": list(outcome.metric_keys),
        "versions_changed": list(outcome.versions_changed),
        "inputs_changed": list(outcome.inputs_changed),
    }

    def render(console: Console) -> None:
        if outcome.ok:
            console.print(f"reproduced: {len(outcome.identical)} files identical")
        else:
            console.print(f"NOT reproduced: {len(outcome.different)} files differ")
        # The causes first: which inputs differ from the ones the run recorded.
        for label in outcome.inputs_changed:
            console.print(f"  input changed: {label}", highlight=False)
        for change in outcome.versions_changed:
            console.print(f"  version changed: {change}", highlight=False, markup=False)
        for name in outcome.different:
            keys = f" (keys: {', '.join(outcome.metric_keys)})" if name == "metrics.json" else ""
            console.print(f"  differs: {name}{keys}", highlight=False, markup=False)

    emit(settings, payload, render)
    if not outcome.ok:
        raise typer.Exit(1)


def _summary_row(run: Run) -> dict[str, Any]:
    manifest = run.manifest
    summary = manifest.summary
    return {
        "run_id": run.run_id,
        "strategy": manifest.strategy.name,
        "dataset": manifest.config.dataset,
        "start": summary.get("start"),
        "end": summary.get("end"),
        "final_equity": summary.get("final_equity"),
        "total_return": summary.get("total_return"),
        "created_at": manifest.created_at,
        "path": str(run.path),
    }


@app.command("list")
def list_command(
    ctx: typer.Context, runs_dir: RunsDirOption = None, json_output: JsonOption = False
) -> None:
    """List saved runs, oldest first."""
    settings = settings_of(ctx, json_output)
    from quantcli.backtest.runs import list_runs

    rows = [_summary_row(run) for run in list_runs(_runs_dir(ctx, runs_dir))]

    def render(console: Console) -> None:
        cells = [
            (
                r["run_id"],
                r["strategy"],
                r["dataset"],
                f"{r['start']} .. {r['end']}",
                "-" if r["final_equity"] is None else f"{r['final_equity']:,.2f}",
                "-" if r["total_return"] is None else f"{r['total_return'] * 100:.2f}%",
            )
            for r in rows
        ]
        columns = ["id", "strategy", "dataset", "period", "final equity", "total return"]
        tbl = table("backtest runs", columns, cells)
        tbl.columns[0].no_wrap = True  # ids are what users copy
        console.print(tbl)

    emit(settings, rows, render)


@app.command()
def show(
    ctx: typer.Context,
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, id prefix or directory.")],
    runs_dir: RunsDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show a saved run: its inputs, versions and metrics."""
    settings = settings_of(ctx, json_output)
    from quantcli.backtest.runs import find_run

    run = find_run(_runs_dir(ctx, runs_dir), run_ref)
    metrics = run.metrics()
    payload = {
        "run_id": run.run_id,
        "path": str(run.path),
        "manifest": run.manifest.to_dict(),
        "metrics": metrics,
    }

    def render(console: Console) -> None:
        manifest = run.manifest
        dataset, strategy = manifest.dataset, manifest.strategy
        rows = [
            ("path", str(run.path)),
            ("created", manifest.created_at),
            ("dataset", f"{dataset.name} v{dataset.version} ({dataset.content_hash[:12]})"),
            ("strategy", f"{strategy.spec} ({strategy.source_hash[:12]})"),
            ("params", ", ".join(f"{k}={v}" for k, v in strategy.params.items())),
        ]
        rows += [
            (k, str(v))
            for k, v in sorted(manifest.config.to_dict().items())
            if k not in ("dataset", "strategy", "params")
        ]
        rows += [("versions", ", ".join(f"{k} {v}" for k, v in manifest.versions.items()))]
        rows += [
            (f"input: {name}", _describe_input(entry)) for name, entry in manifest.inputs.items()
        ]
        console.print(table(run.run_id, ["field", "value"], rows))
        _render_metrics(console, "metrics", metrics)

    emit(settings, payload, render)


def _describe_input(entry: Mapping[str, object]) -> str:
    """``sha256 prefix (what it was)`` of one manifest input."""
    details = ", ".join(f"{k} {v}" for k, v in sorted(entry.items()) if k != "sha256")
    digest = str(entry.get("sha256"))[:12]
    return f"{digest} ({details})" if details else digest
