"""`quantcli model` commands: train, route, predict, list, show, verify, rm, gc, push,
reproduce, and the champion and challenger commands alias, history, compare and promote.

Thin wrappers over quantcli.models; scikit-learn is imported only by the commands that fit or
load a model, and arch only by compare and promote, never by ``quantcli model --help``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.commands.backtest import parse_params
from quantcli.commands.run_options import parse_symbols
from quantcli.core.dates import parse_date
from quantcli.errors import QuantcliError, UsageError
from quantcli.output import JsonOption, emit, info, settings_of, table

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console


app = typer.Typer(
    help=(
        "Models: train, route, predict, list, inspect, verify, remove and reproduce versions; "
        "aliases, their history, comparisons and gated promotion."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` fields every model command shares."""
    return {
        "name": meta["name"],
        "version": meta["version"],
        "ref": meta["ref"],
        "kind": meta["kind"],
        "label": meta["label"],
        "metrics": meta["metrics"],
        "artifact_sha256": meta["artifact_sha256"],
        "predictions_sha256": meta["predictions_sha256"],
        "created_at": meta["created_at"],
    }


def _headline(meta: dict[str, Any]) -> str:
    if meta["kind"] == "router":
        return f"routes on {meta['params']['feature']} to {', '.join(meta['params']['models'])}"
    metrics = meta["metrics"]
    keys = ("auc", "accuracy", "ic_mean") if "auc" in metrics else ("mae", "rmse", "ic_mean")
    return ", ".join(f"{k} {_cell(metrics.get(k))}" for k in keys)


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model's name in the registry.")],
    features: Annotated[str, typer.Option("--features", help="Feature set reference.")],
    label: Annotated[str, typer.Option("--label", help="direction:H or return:H.")],
    model: Annotated[str, typer.Option("--model", help="baseline, logistic, hgb or rf.")],
    train_from: Annotated[str, typer.Option("--train-from", help="First training date.")],
    train_to: Annotated[str, typer.Option("--train-to", help="Last training date.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")],
    params: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Model parameter NAME=VALUE.")
    ] = None,
    test_to: Annotated[
        str | None,
        typer.Option("--test-to", help="Test walk-forward on the sessions after --train-to."),
    ] = None,
    folds: Annotated[int, typer.Option("--folds", help="Walk-forward folds.")] = 3,
    embargo: Annotated[
        int | None,
        typer.Option("--embargo", help="Sessions embargoed after each test block (default H)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Train, evaluate walk-forward and register a model (nothing new if already trained)."""
    from quantcli.models import TrainSpec, train

    settings = settings_of(ctx, json_output)
    spec = TrainSpec(
        label=label,
        kind=model,
        params=parse_params(params or []),
        train_from=parse_date(train_from, "--train-from"),
        train_to=parse_date(train_to, "--train-to"),
        test_to=parse_date(test_to, "--test-to"),
        folds=folds,
        seed=seed,
        embargo=embargo,
    )
    result = train(name, spec, features=features, root=settings.root)
    meta = result.metadata
    if not result.created:
        info(settings, f"{meta['ref']} was already trained from these inputs; nothing new")

    def render(console: Console) -> None:
        console.print(f"{meta['ref']}: {meta['kind']} on {meta['label']}: {_headline(meta)}")

    emit(settings, {**_summary(meta), "created": result.created}, render)


@app.command("route")
def route_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The router's name in the registry.")],
    feature: Annotated[str, typer.Option("--feature", help="The regime feature (e.g. vol_20).")],
    bins: Annotated[
        str, typer.Option("--bins", help="Quantile levels cutting it into regimes: 0.33,0.66.")
    ],
    models: Annotated[
        str, typer.Option("--models", help="One model per regime, lowest first: a@v1,b@v2,c@v1.")
    ],
    features: Annotated[str, typer.Option("--features", help="Feature set reference.")],
    train_from: Annotated[
        str, typer.Option("--train-from", help="First date the quantiles are computed on.")
    ],
    train_to: Annotated[
        str, typer.Option("--train-to", help="Last date the quantiles are computed on.")
    ],
    json_output: JsonOption = False,
) -> None:
    """Register a router: each row goes to the model of its regime (a quantile bin)."""
    from quantcli.models.router import parse_levels, route

    settings = settings_of(ctx, json_output)
    refs = [m.strip() for m in models.split(",") if m.strip()]
    result = route(
        settings.root,
        name,
        feature=feature,
        levels=parse_levels(bins),
        models=refs,
        features=features,
        train_from=parse_date(train_from, "--train-from"),
        train_to=parse_date(train_to, "--train-to"),
    )
    meta = result.metadata
    if not result.created:
        info(settings, f"{meta['ref']} already routes these models on these edges; nothing new")
    params = meta["params"]

    def render(console: Console) -> None:
        edges = ", ".join(f"{e:.6g}" for e in params["edges"])
        console.print(
            f"{meta['ref']}: router on {params['feature']} (edges {edges}) to "
            f"{', '.join(params['models'])}"
        )

    emit(settings, {**_summary(meta), "params": params, "created": result.created}, render)


OUTPUT_FORMATS = ("parquet", "csv")
SHOWN_ROWS = 20


def _output_format(output: Path | None) -> str | None:
    """The --output format from its suffix, checked before anything is predicted."""
    if output is None:
        return None
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"--output {output}: name a .parquet or .csv file")
    if not output.parent.is_dir():
        raise UsageError(f"--output {output}: directory {output.parent} does not exist")
    return fmt


@app.command("predict")
def predict_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The model: NAME[@vN|@latest|@hash].")],
    features: Annotated[str, typer.Option("--features", help="Feature set reference.")],
    start: Annotated[str | None, typer.Option("--from", help="First date (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last date (inclusive).")] = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Comma-separated symbols (default: all).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the predictions (.parquet|.csv).")
    ] = None,
    fallback: Annotated[
        str | None,
        typer.Option("--fallback", help="baseline: answer with it if the model cannot load."),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Name this call (default: a fresh id).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Score a feature set's rows in one batch; every call is appended to the audit log."""
    from quantcli.models.predict import predict

    settings = settings_of(ctx, json_output)
    fmt = _output_format(output)
    result = predict(
        ref,
        features=features,
        root=settings.root,
        start=parse_date(start, "--from"),
        end=parse_date(end, "--to"),
        symbols=parse_symbols(symbols),
        fallback=fallback,
        request_id=request_id,
        output=output,
        output_format=fmt or "parquet",
    )
    frame = result.frame
    payload: dict[str, Any] = {
        "request_id": result.request_id,
        "model": result.model,
        "answered_by": list(result.answered_by),
        "fallback_reason": result.fallback_reason,
        "rows": frame.height,
        "skipped": result.skipped,
        "latency_ms": result.latency_ms,
        "audit_ms": result.audit_ms,
        "audit_batch": str(result.batch),
        "output": None if output is None else str(output),
    }
    if result.fallback_reason:
        from quantcli.output import warn

        warn(
            settings,
            f"{result.model} could not be loaded: {', '.join(result.answered_by)} "
            f"answered instead ({result.fallback_reason})",
        )
    summary = (
        f"{frame.height} predictions by {', '.join(result.answered_by)} "
        f"(request {result.request_id}, {result.skipped} rows skipped)"
    )
    if output is not None:
        info(settings, f"{summary}; wrote {output}")
        emit(settings, payload, lambda c: None)
        return
    payload["predictions"] = frame.to_dicts()

    def render(console: Console) -> None:
        shown = frame.head(SHOWN_ROWS)
        columns = [c for c in shown.columns if shown.get_column(c).null_count() < shown.height]
        rows = [[_cell(v) for v in row] for row in shown.select(columns).iter_rows()]
        console.print(table(None, columns, rows))

    emit(settings, payload, render)
    more = f"; showing the first {SHOWN_ROWS} (use --output or --json)"
    info(settings, summary + (more if frame.height > SHOWN_ROWS else ""))


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="List this model's versions.")] = None,
    json_output: JsonOption = False,
) -> None:
    """List models (latest version) or one model's versions."""
    from quantcli.models import registry

    settings = settings_of(ctx, json_output)
    if name is None:
        metas = [registry.versions(settings.root, n)[-1] for n in registry.names(settings.root)]
        title = "models"
    else:
        metas = registry.versions(settings.root, name)
        title = f"versions of {name}"
    rows = [
        [m["ref"], m["kind"], m["label"], _headline(m), m["artifact_sha256"][:10], m["created_at"]]
        for m in metas
    ]
    columns = ["ref", "kind", "label", "metrics", "artifact", "created UTC"]
    emit(
        settings,
        [_summary(m) for m in metas],
        lambda c: c.print(table(title, columns, rows)),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME[@vN|@latest|@hash].")],
    json_output: JsonOption = False,
) -> None:
    """Show a model version's metadata: inputs, folds and metrics."""
    from quantcli.models import registry

    settings = settings_of(ctx, json_output)
    meta = registry.metadata(settings.root, ref)
    held = registry.aliases(settings.root, meta["name"])
    on = sorted(a for a, v in held.items() if v == meta["version"])

    def render(console: Console) -> None:
        source = meta.get("source", {})
        facts = [
            ["version", meta["ref"]],
            ["aliases", ", ".join(on) or "-"],
            ["candidates trained", f"{candidates} under {meta['name']} (removed ones too)"],
            ["kind / task", f"{meta['kind']} / {meta['task']}"],
            ["params", ", ".join(f"{k}={v}" for k, v in sorted(meta["params"].items())) or "-"],
            ["seed", meta["seed"]],
            ["label", meta["label"]],
            ["features", f"{source.get('features_ref', '-')} ({source.get('dataset_ref', '-')})"],
            ["window", f"{meta['window']['train_from']} .. {meta['window']['train_to']}"],
            ["test to", meta["window"]["test_to"] or "-"],
            ["dropped rows", ", ".join(f"{k} {v}" for k, v in meta["dropped_rows"].items())],
            ["artifact sha256", meta["artifact_sha256"]],
            ["predictions sha256", meta["predictions_sha256"]],
            ["created (UTC)", meta["created_at"]],
        ]
        console.print(table(None, ["field", "value"], facts))
        keys = [k for k in meta["metrics"] if k != "rows"]
        rows = [
            [str(f["fold"]), f["test_from"], f["test_to"], f["metrics"]["rows"]]
            + [_cell(f["metrics"].get(k)) for k in keys]
            for f in meta["fold_results"]
        ]
        overall = meta["metrics"]
        rows.append(["all", "", "", overall["rows"], *(_cell(overall[k]) for k in keys)])
        console.print(table("out of sample", ["fold", "from", "to", "rows", *keys], rows))

    candidates = registry.candidates(settings.root, meta["name"])
    payload = {**_summary(meta), "aliases": on, "candidates": candidates, "metadata": meta}
    emit(settings, payload, render)


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="NAME (every version) or NAME@vN; default: all models.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Recompute every artifact hash; exit 1 naming missing, extra or changed files."""
    from quantcli.commands.data import emit_verify
    from quantcli.models import registry

    settings = settings_of(ctx, json_output)
    emit_verify(
        settings, registry.verify(settings.root, ref), nothing="no model versions to verify"
    )


@app.command("rm")
def rm_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to remove (NAME@vN).")],
    force: Annotated[bool, typer.Option("--force", help="Really remove it.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Remove a model version (needs --force, which also removes its aliases, recorded in the
    history; its number is never reused)."""
    from quantcli.models import registry

    settings = settings_of(ctx, json_output)
    name, version = registry.resolve(settings.root, ref)
    on = sorted(a for a, v in registry.aliases(settings.root, name).items() if v == version)
    meta = registry.remove(settings.root, ref, force=force)
    also = f" and alias {', '.join(on)}" if on else ""
    emit(
        settings,
        {**_summary(meta), "removed": True, "aliases_removed": on},
        lambda c: c.print(f"removed {meta['ref']}{also}"),
    )


@app.command("gc")
def gc_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Remove what trainings and predictions killed while writing left behind."""
    from dataclasses import asdict

    from quantcli.models import audit, registry

    settings = settings_of(ctx, json_output)
    models = registry.gc(settings.root, dry_run=dry_run)
    logs = audit.gc(settings.root, dry_run=dry_run)
    report = dataclasses.replace(
        models,
        temp_removed=models.temp_removed + logs.temp_removed,
        temp_in_use=models.temp_in_use + logs.temp_in_use,
    )
    verb = "would remove" if dry_run else "removed"

    def render(console: Console) -> None:
        for entry in report.temp_removed:
            console.print(f"{verb} {entry}")
        for entry in report.temp_in_use:
            console.print(f"kept {entry} (locked: a publish or an audit write is running)")
        if not (report.temp_removed or report.temp_in_use):
            console.print("nothing to collect")

    emit(settings, asdict(report), render)


@app.command("push")
def push_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to push (NAME@vN or NAME@ALIAS).")],
    remote: Annotated[
        str | None, typer.Option("--remote", help="The remote (default: the only one).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Upload a model version to a dataset remote (its files, then its metadata, last)."""
    from dataclasses import asdict

    from quantcli.models.remote import push_model
    from quantcli.store.remotes import get_remote

    settings = settings_of(ctx, json_output)
    target = get_remote(settings.root, remote)
    result = push_model(settings.root, ref, target)
    message = (
        f"pushed {result.ref} to {target.name}: {result.uploaded} uploaded, "
        f"{result.skipped} already there"
    )
    emit(
        settings,
        {**asdict(result), "remote": target.name},
        lambda c: c.print(message, markup=False),
    )


@app.command("reproduce")
def reproduce_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to re-train (NAME@vN).")],
    pull: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="Fetch the model version, its feature set and dataset from a remote if missing.",
        ),
    ] = False,
    remote: Annotated[
        str | None, typer.Option("--remote", help="The remote --pull uses (default: the only one).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Re-train from the metadata alone; exit 0 if identical, 1 with what changed."""
    from quantcli.models.reproduce import reproduce
    from quantcli.store.remotes import get_remote

    settings = settings_of(ctx, json_output)
    if remote is not None and not pull:
        raise UsageError("--remote applies with --pull")
    source = get_remote(settings.root, remote) if pull else None
    report = reproduce(settings.root, ref, remote=source)
    payload = {
        "ref": report.ref,
        "identical": report.identical,
        "differences": report.differences,
        "version": report.recorded["version"],
        "metrics": report.metrics,
        "recorded_metrics": report.recorded["metrics"],
        "artifact_sha256": report.artifact_sha256,
        "predictions_sha256": report.predictions_sha256,
    }
    error = None if report.identical else QuantcliError(report.summary())

    def render(console: Console) -> None:
        for line in report.differences or [report.summary()]:
            console.print(line)

    emit(settings, payload, render, error=error)


ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why: recorded in the model's history.")
]
FeaturesOption = Annotated[
    str | None, typer.Option("--features", help="Feature set reference to score both on.")
]
FromOption = Annotated[str | None, typer.Option("--from", help="First date of the window.")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last date of the window.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Bootstrap seed.")]
ResamplesOption = Annotated[int, typer.Option("--resamples", help="Bootstrap resamples.")]
BlockOption = Annotated[
    int | None,
    typer.Option(
        "--block", help="Mean bootstrap block, in sessions (default: the label horizon or more)."
    ),
]


@app.command("alias")
def alias_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to point at (NAME@vN or any ref).")],
    alias: Annotated[str, typer.Argument(help="The alias: champion, challenger or any name.")],
    reason: ReasonOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Move champion without the gate (needs --reason).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Point an alias (NAME@ALIAS) at a version and record the move in the history."""
    from quantcli.models import registry

    settings = settings_of(ctx, json_output)
    registry.check_alias(alias)  # a typo in the alias is reported before the ref is looked up
    name, version = registry.resolve(settings.root, ref)
    target = f"{name}@v{version}"
    move = registry.set_alias(settings.root, target, alias, reason=reason, force=force)
    payload = {
        "name": name,
        "alias": alias,
        "ref": target,
        "moved": move is not None,
        "move": None if move is None else move.to_dict(name),
    }

    def render(console: Console) -> None:
        if move is None:
            console.print(f"{name}@{alias} is already {target}; nothing recorded")
        else:
            was = "" if move.before is None else f" (was {name}@v{move.before})"
            console.print(f"{name}@{alias} -> {target}{was}")

    emit(settings, payload, render)


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Who held each alias then: YYYY-MM-DD (end of day, UTC) or a timestamp."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show every alias move and which version held each alias when."""
    from quantcli.models import registry
    from quantcli.models.aliases import holdings, parse_at

    settings = settings_of(ctx, json_output)
    instant = None if at is None else parse_at(at)
    if alias is not None:
        registry.check_alias(alias)
    moves = [
        m
        for m in registry.alias_history(settings.root, name)
        if (alias is None or m.alias == alias) and (instant is None or m.when <= instant)
    ]
    held = holdings(moves)
    if instant is not None:
        held = [h for h in held if h.until is None or h.until > instant]
    payload = {
        "name": name,
        "alias": alias,
        "at": None if instant is None else instant.isoformat(),
        "moves": [m.to_dict(name) for m in moves],
        "held": [h.to_dict(name) for h in held],
    }

    def render(console: Console) -> None:
        when = "now" if instant is None else f"at {instant.isoformat()}"
        if not moves:
            by = "" if instant is None else f" by {instant.isoformat()}"
            console.print(f"{name}: no alias moves{by}")
            return
        rows = [
            [h.alias, f"{name}@v{h.version}", h.since.isoformat(), _until(h.until)] for h in held
        ]
        title = f"who held each alias ({when})" if instant else "who held each alias"
        console.print(table(title, ["alias", "version", "since (UTC)", "until (UTC)"], rows))
        if instant is None:
            lines = [
                [
                    m.seq,
                    m.when.isoformat(),
                    m.alias,
                    _ref(name, m.before),
                    _ref(name, m.after),
                    m.reason or "-",
                    _evidence(m.evidence),
                ]
                for m in moves
            ]
            columns = ["#", "when (UTC)", "alias", "from", "to", "reason", "evidence"]
            console.print(table("moves", columns, lines))

    emit(settings, payload, render)


def _until(value: datetime | None) -> str:
    return "(holds it)" if value is None else value.isoformat()


def _ref(name: str, version: int | None) -> str:
    return "-" if version is None else f"{name}@v{version}"


def _evidence(evidence: Any) -> str:
    if not evidence:
        return "-"
    return f"{evidence['statistic']} p = {_cell(evidence['p_value'])} (alpha {evidence['alpha']})"


def _window(start: str | None, end: str | None) -> tuple[Any, Any]:
    return parse_date(start, "--from"), parse_date(end, "--to")


def _render_comparison(console: Console, doc: dict[str, Any]) -> None:
    """Metrics side by side, then one line per bootstrap test."""
    a, b = doc["a"], doc["b"]
    keys = [k for k in a["metrics"] if k in b["metrics"]]
    rows = [[k, _cell(a["metrics"][k]), _cell(b["metrics"][k])] for k in keys]
    window = doc["window"]
    title = f"{doc['features']}, {window['from']} .. {window['to']}: {doc['dates']} dates"
    console.print(table(title, ["metric", f"A {a['ref']}", f"B {b['ref']}"], rows))
    _render_tests(console, doc)


def _render_backtests(console: Console, doc: dict[str, Any]) -> None:
    """``--backtest``: each model's run net of charges, then the daily-return tests."""
    keys = ("total_return", "sharpe", "trades", "charges", "psr", "deflated_psr", "candidates")
    rows = [[k, _cell(doc["a"][k]), _cell(doc["b"][k])] for k in keys]
    window = doc["window"]
    title = f"backtests on {doc['dataset']}, {window['from']} .. {window['to']}"
    columns = ["", f"A {doc['a']['ref']}", f"B {doc['b']['ref']}"]
    console.print(table(f"{title}: {doc['sessions']} sessions", columns, rows))
    _render_tests(console, doc)


def _render_tests(console: Console, doc: dict[str, Any]) -> None:
    boot = doc["bootstrap"]
    trials = (
        f"stationary block bootstrap, {boot['resamples']} resamples, mean block "
        f"{boot['block']}, seed {boot['seed']}; improvement > 0: B is better"
    )
    tests = [
        [
            name,
            _cell(t["improvement"]),
            f"[{_cell(t['ci'][0])}, {_cell(t['ci'][1])}]",
            _cell(t["p_value"]),
            t["dates"],
        ]
        for name, t in doc["tests"].items()
    ]
    columns = ["per-date difference", "improvement", "95% CI", "p (B better)", "dates"]
    console.print(table(trials, columns, tests))


@app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The incumbent (e.g. NAME@champion).")],
    b: Annotated[str, typer.Argument(help="The challenger (e.g. NAME@challenger).")],
    features: Annotated[
        str, typer.Option("--features", help="Feature set reference to score both on.")
    ],
    start: Annotated[str, typer.Option("--from", help="First date of the window.")],
    end: Annotated[str, typer.Option("--to", help="Last date of the window.")],
    seed: SeedOption = 0,
    resamples: ResamplesOption = 1000,
    block: BlockOption = None,
    backtest: Annotated[
        bool,
        typer.Option(
            "--backtest",
            help="Also backtest both with the model strategy, net of charges, and compare "
            "their daily returns (Sharpe difference, probabilistic and deflated Sharpe).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Compare two versions on a window neither trained on: metrics and a paired bootstrap."""
    from quantcli.models.compare import compare

    settings = settings_of(ctx, json_output)
    first, last = _window(start, end)
    result = compare(
        settings.root,
        a,
        b,
        features=features,
        start=first,
        end=last,
        seed=seed,
        resamples=resamples,
        block=block,
    )
    doc = result.to_dict()
    if backtest:
        from quantcli.models.backtest_compare import compare_backtests

        runs = compare_backtests(
            settings.root,
            a,
            b,
            features=features,
            start=first,
            end=last,
            seed=seed,
            resamples=resamples,
            block=block,
        )
        doc["backtest"] = runs.to_dict()

    def render(console: Console) -> None:
        _render_comparison(console, doc)
        if backtest:
            _render_backtests(console, doc["backtest"])

    emit(settings, doc, render)


@app.command("promote")
def promote_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The challenger (NAME@vN).")],
    features: FeaturesOption = None,
    start: FromOption = None,
    end: ToOption = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Promote only when the p-value is below this.")
    ] = 0.05,
    seed: SeedOption = 0,
    resamples: ResamplesOption = 1000,
    block: BlockOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote whatever the evidence (needs --reason).")
    ] = False,
    reason: ReasonOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move champion to a version only if it beats the champion (exit 3 if not)."""
    from quantcli.errors import NotPromotedError
    from quantcli.models.promote import promote

    settings = settings_of(ctx, json_output)
    first, last = _window(start, end)
    result = promote(
        settings.root,
        ref,
        features=features,
        start=first,
        end=last,
        alpha=alpha,
        seed=seed,
        resamples=resamples,
        block=block,
        force=force,
        reason=reason,
    )
    comparison = None if result.comparison is None else result.comparison.to_dict()
    payload = {
        "challenger": result.challenger,
        "champion_before": result.champion,
        "promoted": result.promoted,
        "forced": result.forced,
        "passed": result.passed,
        "alpha": result.alpha,
        "reason": result.reason,
        "comparison": comparison,
    }
    error = None if result.promoted else NotPromotedError(result.summary())

    def render(console: Console) -> None:
        if comparison is not None:
            _render_comparison(console, comparison)
        if result.promoted:
            console.print(result.summary())

    emit(settings, payload, render, error=error)
