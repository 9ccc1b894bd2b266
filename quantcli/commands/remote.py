"""`quantcli data remote add/list/rm`, `data push` and `data pull`: thin wrappers over
quantcli.store.remotes (boto3 is imported there, inside the functions that talk to a remote)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from quantcli.output import emit, settings_of, table

remote_app = typer.Typer(
    help="Named S3 remotes (s3://bucket/prefix) to push datasets to and pull them from.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RemoteOption = Annotated[
    str | None,
    typer.Option("--remote", help="The remote's name (default: the only one configured)."),
]


@remote_app.command("add")
def add_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The remote's name, e.g. origin.")],
    url: Annotated[str, typer.Argument(help="s3://BUCKET[/PREFIX]")],
) -> None:
    """Name a remote; its endpoint and credentials come from the environment or quantcli.toml
    [remote.NAME] (endpoint_url, region, access_key_id, secret_access_key), never stored."""
    from quantcli.store import remotes

    settings = settings_of(ctx)
    remote = remotes.add_remote(settings.root, name, url)
    emit(
        settings, asdict(remote), lambda c: c.print(f"{remote.name} -> {remote.url}", markup=False)
    )


@remote_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List the remotes (this store's, then quantcli.toml's)."""
    from quantcli.store import remotes

    settings = settings_of(ctx)
    found = remotes.list_remotes(settings.root)
    emit(
        settings,
        [asdict(r) for r in found],
        lambda c: (
            c.print(table(None, ["remote", "url"], [[r.name, r.url] for r in found]))
            if found
            else c.print("no remotes")
        ),
    )


@remote_app.command("ls")
def ls_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The remote to look into.")],
    entry: Annotated[
        str | None,
        typer.Argument(help="Only this dataset or model (an error when it has no version)."),
    ] = None,
) -> None:
    """List the datasets and models a remote holds and their complete versions (what `data
    pull` and `model reproduce --pull` can fetch)."""
    from quantcli.models.remote import remote_contents
    from quantcli.store import remotes

    settings = settings_of(ctx)
    target = remotes.get_remote(settings.root, name)
    held = remote_contents(target, entry)
    datasets, models = held.datasets, held.models
    rows = [
        [kind, found, ", ".join(f"v{v}" for v in versions)]
        for kind, listing in (("dataset", datasets), ("model", models))
        for found, versions in listing.items()
    ]
    emit(
        settings,
        {
            **asdict(target),
            "datasets": [{"name": ds, "versions": v} for ds, v in datasets.items()],
            "models": [{"name": m, "versions": v} for m, v in models.items()],
        },
        lambda c: (
            c.print(table(None, ["kind", "name", "versions"], rows))
            if rows
            else c.print(f"no datasets or models on remote {target.name}", markup=False)
        ),
    )


@remote_app.command("rm")
def rm_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The remote to forget.")],
) -> None:
    """Forget a remote of this store (nothing on the remote is deleted)."""
    from quantcli.store import remotes

    settings = settings_of(ctx)
    remote = remotes.remove_remote(settings.root, name)
    emit(settings, asdict(remote), lambda c: c.print(f"removed remote {remote.name}", markup=False))


def push(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version to push (REF).")],
    remote: RemoteOption = None,
) -> None:
    """Upload a dataset version: data files not already there, then its manifest, last."""
    from quantcli.store import remotes

    settings = settings_of(ctx)
    target = remotes.get_remote(settings.root, remote)
    result = remotes.push(settings.root, ref, target)
    message = (
        f"pushed {result.ref} to {target.name}: {result.uploaded} uploaded, "
        f"{result.skipped} already there"
    )
    emit(
        settings,
        {**asdict(result), "remote": target.name},
        lambda c: c.print(message, markup=False),
    )


def pull(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@vN or NAME@<content hash>.")],
    remote: RemoteOption = None,
) -> None:
    """Fetch a dataset version, checking every hash before it is published here."""
    from quantcli.store import remotes

    settings = settings_of(ctx)
    target = remotes.get_remote(settings.root, remote)
    result = remotes.pull(settings.root, ref, target)
    if result.created:
        message = f"pulled {result.ref} from {target.name} ({result.downloaded} files)"
    else:
        message = f"{result.ref} is here already as {result.local_ref}"
    emit(
        settings,
        {**asdict(result), "remote": target.name},
        lambda c: c.print(message, markup=False),
    )
