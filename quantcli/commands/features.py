"""`quantcli features` commands: build, list and show feature sets.

A feature set is a dataset of kind ``features``, so ``data query``, ``data verify``, ``data
tag``, ``data rm`` and ``data gc`` work on it as they do on bars. Heavy libraries (polars, the
engine) are imported inside the commands so `quantcli features --help` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.commands.backtest import parse_params
from quantcli.output import emit, progress, settings_of, table

if TYPE_CHECKING:
    from rich.console import Console

    from quantcli.features import FeatureSet

app = typer.Typer(
    help="Versioned feature sets: build them from a dataset, list and inspect them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def describe(fs: FeatureSet) -> dict[str, Any]:
    """The ``--json`` form of a feature-set version (build and show print it)."""
    m = fs.manifest
    return {
        "name": m.name,
        "version": m.version,
        "ref": fs.ref,
        "content_hash": fs.content_hash,
        "dataset": fs.dataset_ref,
        "dataset_hash": fs.dataset_hash,
        "spec": fs.spec,
        "spec_sha256": fs.spec_hash,
        "params": fs.params,
        "actions_sha256": m.source.options.get("actions_sha256"),
        "columns": list(fs.columns),
        "interval": m.interval,
        "rows": m.rows,
        "symbols": len(m.symbols),
        "first_ts": m.first_ts.isoformat(),
        "last_ts": m.last_ts.isoformat(),
        "created_at": m.created_at.isoformat(),
    }


@app.command("build")
def build(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The feature set's name.")],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Source dataset reference: NAME[@vN|@tag].")
    ],
    spec: Annotated[
        str, typer.Option("--spec", help="basic or path/to/file.py:ClassName.")
    ] = "basic",
    params: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Definition parameter NAME=VALUE.")
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the feature set's lock.")
    ] = 0.0,
) -> None:
    """Build features from a dataset and publish them as the feature set's next version."""
    from quantcli.commands.backtest import _fractions
    from quantcli.features import build_features, open_feature_set

    settings = settings_of(ctx)
    raw = parse_params(params or [])
    with progress(settings, f"features {name}", total=1.0) as advance:
        result = build_features(
            settings.root, name, dataset, spec, raw, wait=wait, progress=_fractions(advance)
        )
    fs = open_feature_set(result.manifest.ref, settings.root)
    payload = {**describe(fs), "created": result.created}
    verb = "built" if result.created else "unchanged:"
    line = (
        f"{verb} {fs.ref} ({len(fs.columns)} features x {fs.manifest.rows:,} rows, "
        f"from {fs.dataset_ref}, {fs.content_hash[:12]})"
    )
    emit(settings, payload, lambda console: console.print(line))


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List feature sets: latest version, rows, features, source dataset, definition, tags."""
    from quantcli.features import list_feature_sets, open_feature_set

    settings = settings_of(ctx)
    payload, rows = [], []
    for summary in list_feature_sets(settings.root):
        m = summary.latest
        fs = open_feature_set(m.ref, settings.root)
        payload.append({**describe(fs), "versions": list(summary.versions), "tags": summary.tags})
        tags = ", ".join(f"{t}=v{v}" for t, v in sorted(summary.tags.items()))
        rows.append(
            [m.name, f"v{m.version}", m.rows, len(fs.columns), fs.dataset_ref, fs.spec, tags]
        )
    columns = ["name", "latest", "rows", "features", "dataset", "spec", "tags"]
    title = f"feature sets in {settings.root}"
    emit(settings, payload, lambda console: console.print(table(title, columns, rows)))


@app.command("show")
def show(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME[@vN|@tag|@hash].")]
) -> None:
    """Show a feature-set version: its source dataset, definition, parameters and columns."""
    from quantcli.features import open_feature_set

    settings = settings_of(ctx)
    fs = open_feature_set(ref, settings.root)
    payload = describe(fs)

    def render(console: Console) -> None:
        m = fs.manifest
        facts = [
            ["version", fs.ref],
            ["content hash", fs.content_hash],
            ["dataset", f"{fs.dataset_ref} ({fs.dataset_hash})"],
            ["definition", f"{fs.spec} (sha256 {fs.spec_hash})"],
            ["parameters", ", ".join(f"{k}={v}" for k, v in fs.params.items()) or "-"],
            ["features", ", ".join(fs.columns)],
            ["rows / symbols", f"{m.rows} / {len(m.symbols)}"],
            ["span", f"{m.first_ts.isoformat()} .. {m.last_ts.isoformat()}"],
            ["created (UTC)", m.created_at.isoformat()],
        ]
        console.print(table(None, ["field", "value"], facts))

    emit(settings, payload, render)
