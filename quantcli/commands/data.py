"""`quantcli data` commands: list, show, diff, tag, rm, gc, verify and query.

Thin wrappers over quantcli.store; heavy libraries (polars, duckdb) are imported inside the
commands so `quantcli data --help` starts fast.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from quantcli.errors import UsageError
from quantcli.output import emit, info, settings_of, stdout, table

if TYPE_CHECKING:
    from rich.console import Console

    from quantcli.settings import Settings
    from quantcli.store.manifest import Manifest
    from quantcli.store.verify import VerifyReport

app = typer.Typer(
    help="Versioned datasets: list, inspect, query, tag and clean up.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

QUERY_FORMATS = ("table", "csv", "json", "parquet")


def _when(value: datetime, interval: str) -> str:
    """A timestamp as people read it: the date for daily bars, else minutes in IST."""
    return value.date().isoformat() if interval == "1d" else value.strftime("%Y-%m-%d %H:%M")


def _summary(m: Manifest) -> dict[str, Any]:
    return {
        "name": m.name,
        "version": m.version,
        "ref": m.ref,
        "interval": m.interval,
        "rows": m.rows,
        "symbols": len(m.symbols),
        "first_ts": m.first_ts.isoformat(),
        "last_ts": m.last_ts.isoformat(),
        "content_hash": m.content_hash,
        "created_at": m.created_at.isoformat(),
    }


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="List this dataset's versions.")] = None,
) -> None:
    """List datasets (latest version, interval, rows, symbols, span, tags) or one's versions."""
    from quantcli.store import catalog

    settings = settings_of(ctx)
    if name is None:
        summaries = catalog.list_datasets(settings.root)
        payload = [
            {**_summary(s.latest), "versions": list(s.versions), "tags": s.tags} for s in summaries
        ]
        rows = [
            [
                s.name,
                f"v{s.latest.version}",
                s.latest.interval,
                s.latest.rows,
                len(s.latest.symbols),
                _when(s.latest.first_ts, s.latest.interval),
                _when(s.latest.last_ts, s.latest.interval),
                ", ".join(f"{t}=v{v}" for t, v in sorted(s.tags.items())),
            ]
            for s in summaries
        ]
        columns = ["name", "latest", "interval", "rows", "symbols", "first", "last", "tags"]
        title = f"datasets in {settings.root}"
    else:
        manifests = catalog.list_versions(settings.root, name)
        tags = catalog.read_tags(settings.root, name)
        payload = [
            {
                **_summary(m),
                "parent": m.parent,
                "source": m.source.kind,
                "tags": sorted(t for t, v in tags.items() if v == m.version),
            }
            for m in manifests
        ]
        rows = [
            [
                f"v{m.version}",
                m.created_at.strftime("%Y-%m-%d %H:%M"),
                m.rows,
                len(m.symbols),
                _when(m.first_ts, m.interval),
                _when(m.last_ts, m.interval),
                m.content_hash[:10],
                ", ".join(p["tags"]),
            ]
            for m, p in zip(manifests, payload, strict=True)
        ]
        columns = ["version", "created UTC", "rows", "symbols", "first", "last", "hash", "tags"]
        title = f"versions of {name}"
    emit(settings, payload, lambda c: c.print(table(title, columns, rows)))


@app.command("show")
def show(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME[@vN|@tag|@hash].")]
) -> None:
    """Show a version's manifest and per-symbol stats (rows, span, min/max close, mean volume)."""
    from quantcli.ops.recipe import has_recipe, load_recipe
    from quantcli.store.manifest import describe_prices
    from quantcli.store.reader import open_dataset

    settings = settings_of(ctx)
    version = open_dataset(ref, settings.root)
    m = version.manifest
    stats = version.symbol_stats().to_dicts()
    for row in stats:
        row["first_ts"] = row["first_ts"].isoformat()
        row["last_ts"] = row["last_ts"].isoformat()
    recipe = load_recipe(settings.root, m.name) if has_recipe(settings.root, m.name) else None
    payload = {
        "manifest": m.to_dict(),
        "symbols": stats,
        "recipe": None if recipe is None else recipe.public(),
    }

    def render(console: Console) -> None:
        facts = [
            ["version", m.ref],
            ["content hash", m.content_hash],
            ["parent", "-" if m.parent is None else f"v{m.parent}"],
            ["created (UTC)", m.created_at.isoformat()],
            ["interval / timezone", f"{m.interval} / {m.timezone}"],
            ["rows / symbols / files", f"{m.rows} / {len(m.symbols)} / {len(m.files)}"],
            ["span", f"{m.first_ts.isoformat()} .. {m.last_ts.isoformat()}"],
            ["columns", ", ".join(m.schema)],
            ["prices", f"{m.prices}: {describe_prices(m.prices)}"],
            ["source", f"{m.source.kind} ({len(m.source.files)} input files)"],
            ["written by", f"quantcli {m.quantcli_version}"],
        ]
        if recipe is not None:
            providers = ", ".join(p.label for p in recipe.providers)
            facts.append(["refresh recipe", f"{recipe.source} from {providers}"])
        console.print(table(None, ["field", "value"], facts))
        per_symbol = [
            [
                s["symbol"],
                s["rows"],
                s["first_ts"][:10] if m.interval == "1d" else s["first_ts"][:16],
                s["last_ts"][:10] if m.interval == "1d" else s["last_ts"][:16],
                round(s["min_close"], 2),
                round(s["max_close"], 2),
                round(s["mean_volume"], 1),
            ]
            for s in stats
        ]
        cols = ["symbol", "rows", "first", "last", "min close", "max close", "mean volume"]
        console.print(table("per symbol", cols, per_symbol))

    emit(settings, payload, render)


@app.command("diff")
def diff_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The old version (REF).")],
    b: Annotated[str, typer.Argument(help="The new version (REF).")],
) -> None:
    """Bars added, removed and changed per symbol from A to B (matched on symbol and ts)."""
    from dataclasses import asdict

    from quantcli.store.diff import diff
    from quantcli.store.reader import open_dataset

    settings = settings_of(ctx)
    result = diff(open_dataset(a, settings.root), open_dataset(b, settings.root))
    counts = ("added", "removed", "changed", "unchanged")
    payload = {
        "a": result.a,
        "b": result.b,
        "identical": result.identical,
        "columns_added": list(result.columns_added),
        "columns_removed": list(result.columns_removed),
        "totals": {k: result.total(k) for k in counts},
        "symbols": [asdict(s) for s in result.symbols],
    }

    def render(console: Console) -> None:
        rows = [[s.symbol, s.added, s.removed, s.changed, s.unchanged] for s in result.symbols]
        rows.append(["total", *(result.total(k) for k in counts)])
        console.print(table(f"{result.a} -> {result.b}", ["symbol", *counts], rows))
        if result.columns_added or result.columns_removed:
            console.print(
                f"columns added: {', '.join(result.columns_added) or '-'}; "
                f"removed: {', '.join(result.columns_removed) or '-'}"
            )

    emit(settings, payload, render)


@app.command("tag")
def tag_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to tag (REF); NAME with --delete.")],
    tag: Annotated[str, typer.Argument(help="The tag name, e.g. paper-2026q4.")],
    force: Annotated[bool, typer.Option("--force", help="Move the tag if it exists.")] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the tag instead.")] = False,
) -> None:
    """Tag a version (then refer to it as NAME@TAG); moving a tag needs --force."""
    from quantcli.store import catalog

    settings = settings_of(ctx)
    name, _ = catalog.parse_ref(ref)
    if delete:
        version = catalog.delete_tag(settings.root, name, tag)
        payload = {"name": name, "tag": tag, "version": version, "deleted": True}
        message = f"removed tag {tag} (was {name}@v{version})"
    else:
        before = catalog.set_tag(settings.root, ref, tag, force=force)
        _, version = catalog.resolve_version(settings.root, ref)
        payload = {"name": name, "tag": tag, "version": version, "previous": before}
        moved = f" (moved from v{before})" if before not in (None, version) else ""
        message = f"{name}@{tag} -> {name}@v{version}{moved}"
    emit(settings, payload, lambda c: c.print(message, highlight=False))


@app.command("rm")
def rm_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to remove (REF).")],
    force: Annotated[bool, typer.Option("--force", help="Really remove it.")] = False,
) -> None:
    """Remove a dataset version (needs --force; its tags go with it)."""
    from quantcli.store import catalog

    settings = settings_of(ctx)
    manifest = catalog.remove_version(settings.root, ref, force=force)
    payload = {"removed": manifest.ref, "content_hash": manifest.content_hash}
    emit(settings, payload, lambda c: c.print(f"removed {manifest.ref}", highlight=False))


@app.command("gc")
def gc_cmd(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
    keep_last: Annotated[
        int | None,
        typer.Option("--keep-last", help="Also remove all but the last N versions (untagged)."),
    ] = None,
) -> None:
    """Remove abandoned temp directories; with --keep-last N also old untagged versions."""
    from dataclasses import asdict

    from quantcli.store import catalog

    settings = settings_of(ctx)
    report = catalog.gc(settings.root, keep_last=keep_last, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"

    def render(console: Console) -> None:
        for entry in (*report.temp_removed, *report.versions_removed):
            console.print(f"{verb} {entry}", highlight=False)
        for entry in report.temp_in_use:
            console.print(f"kept {entry} (its dataset is locked: a publish is running)")
        if not (report.temp_removed or report.versions_removed or report.temp_in_use):
            console.print("nothing to collect")

    emit(settings, asdict(report), render)


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="The version to check (REF); default: every version.")
    ] = None,
) -> None:
    """Recompute every hash; exit 1 naming missing, extra or changed files."""
    from quantcli.store.verify import verify

    settings = settings_of(ctx)
    emit_verify(settings, verify(settings.root, ref), nothing="no versions to verify")


def emit_verify(settings: Settings, reports: list[VerifyReport], *, nothing: str) -> None:
    """Print verify ``reports`` (of datasets or models): one summary line each, or ``nothing``;
    exit 1 naming the first failure."""
    from dataclasses import asdict

    from quantcli.store.verify import failure

    payload = {
        "ok": all(r.ok for r in reports),
        "versions": [{**asdict(r), "ok": r.ok} for r in reports],
    }

    def render(console: Console) -> None:
        for r in reports:
            console.print(r.summary())
        if not reports:
            console.print(nothing)

    emit(settings, payload, render, error=failure(reports))


@app.command("query")
def query_cmd(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="The SQL (SELECT) to run; the dataset is `bars`.")],
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset", "-d", help="REF (the view bars) or ALIAS=REF for more views; repeatable."
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="table, csv, json or parquet (default: table)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result to this file.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="Rows shown in a table (only those are fetched).")
    ] = 100,
    audit: Annotated[
        bool, typer.Option("--audit", help="Also query the model audit log as the view audit.")
    ] = False,
) -> None:
    """Run SQL over pinned dataset versions in a sandboxed DuckDB (read-only, no other files)."""
    settings = settings_of(ctx)
    fmt = _query_format(fmt, output)
    extra = None
    if audit:
        from quantcli.models.audit import view

        extra = {"audit": view(settings.root)}
    if output is not None or (fmt != "table" and not settings.json):
        # Files and csv/json/parquet text go through polars (any type, any size); printed
        # results (a table, or --json) are Python rows, without loading Arrow or polars.
        from quantcli.store.query import encode, query_frame, write_result

        result = query_frame(settings.root, sql, dataset or [], extra)
        if output is not None:
            write_result(result, fmt, output)
            info(settings, f"wrote {result.height} rows to {output}")
        else:
            typer.echo(encode(result, fmt).decode("utf-8"), nl=False)
        return
    from quantcli.store.query import query_rows

    found = query_rows(
        settings.root, sql, dataset or [], extra, limit=None if settings.json else limit
    )
    if settings.json:
        payload = {
            "columns": list(found.columns),
            "types": list(found.types),
            "rows": [dict(zip(found.columns, row, strict=True)) for row in found.rows],
        }
        emit(settings, payload, lambda c: None)
        return
    stdout().print(table(None, list(found.columns), [list(r) for r in found.rows]))
    if found.more:
        info(settings, f"showing the first {len(found.rows)} rows; more exist (use --limit or -o)")


def _query_format(fmt: str | None, output: Path | None) -> str:
    """The output format: as given, else from the --output suffix, else a table."""
    if fmt is None:
        if output is None:
            return "table"
        fmt = output.suffix.lstrip(".").lower()
        if fmt not in QUERY_FORMATS[1:]:
            raise UsageError(f"cannot tell the format of {output}; give --format csv|json|parquet")
    if fmt not in QUERY_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; use one of {', '.join(QUERY_FORMATS)}")
    if fmt == "table" and output is not None:
        raise UsageError("--output needs --format csv, json or parquet")
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    return fmt
