"""The ``quantcli`` command: global options, sub-command registration and the error edge.

Only typer, rich and the command modules are imported here; every command imports its heavy
libraries (duckdb, numba, sklearn, ...) inside the function that needs them, so
``quantcli --help`` starts fast.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from quantcli import __version__
from quantcli.commands import actions as actions_cmd
from quantcli.commands import backtest as backtest_cmd
from quantcli.commands import calendar as calendar_cmd
from quantcli.commands import charges as charges_cmd
from quantcli.commands import data as data_cmd
from quantcli.commands import features as features_cmd
from quantcli.commands import ingest as ingest_cmd
from quantcli.commands import model as model_cmd
from quantcli.commands import refresh as refresh_cmd
from quantcli.errors import QuantcliError, UsageError
from quantcli.output import print_error
from quantcli.settings import Settings, resolve_root

ARGV = "quantcli.argv"


class QuantcliGroup(TyperGroup):
    """The error edge: every failure becomes one report and an exit code, never a traceback
    (unless ``--debug``).

    A ``QuantcliError`` is reported as it is; an ``OSError`` the library let through (a
    read-only or otherwise unwritable store, a full disk) becomes one line naming the file.
    With ``--json`` the report is a JSON document on stdout, click's usage errors included.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: ClickContext | None = None,
        **extra: Any,
    ) -> ClickContext:
        argv = list(args)
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except ClickException as exc:
            # The global options themselves did not parse, so only the raw words tell --json.
            if isinstance(exc, NoArgsIsHelpError) or not _json_in(argv):
                raise
            print_error(True, UsageError(exc.format_message()))
            raise typer.Exit(exc.exit_code) from None
        ctx.meta[ARGV] = argv
        return ctx

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except QuantcliError as exc:
            if _debug(ctx):
                raise
            error = exc
        except ClickException as exc:
            # Without --json click prints its usage text itself; a help screen stays one.
            if isinstance(exc, NoArgsIsHelpError) or not _wants_json(ctx):
                raise
            error = UsageError(exc.format_message())
        except OSError as exc:
            if exc.errno == errno.EPIPE or _debug(ctx):
                raise
            error = _os_error(exc, ctx)
        print_error(_wants_json(ctx), error)
        raise typer.Exit(error.exit_code) from None


def _settings(ctx: ClickContext) -> Settings | None:
    return ctx.obj if isinstance(ctx.obj, Settings) else None


def _debug(ctx: ClickContext) -> bool:
    settings = _settings(ctx)
    return settings.debug if settings is not None else bool(ctx.params.get("debug"))


def _json_in(argv: list[str]) -> bool:
    """Whether ``--json`` is among the options (the global one or a sub-command's)."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in words


def _wants_json(ctx: ClickContext) -> bool:
    settings = _settings(ctx)
    if settings is not None and settings.json:
        return True
    return bool(ctx.params.get("json_output")) or _json_in(ctx.meta.get(ARGV, []))


def _os_error(exc: OSError, ctx: ClickContext) -> QuantcliError:
    """One line for a file-system error: the file, the reason, and --root when it is the
    store that cannot be written."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = None if exc.filename is None else str(exc.filename)
    settings = _settings(ctx)
    hint = ""
    if (
        settings is not None
        and where is not None
        and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
        and Path(where).is_relative_to(settings.root)
    ):
        hint = f" (check the permissions of the store {settings.root} or give --root another)"
    return QuantcliError(f"{reason}{hint}", path=where)


app = typer.Typer(
    cls=QuantcliGroup,
    name="quantcli",
    help="Research-and-backtest toolkit for the Indian markets (NSE/BSE).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help and usage errors, as sqlite-utils prints them: typer's rich help
    # imports rich.markdown and markdown-it (~0.08 s), a quarter of `quantcli --help`.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"quantcli {__version__}")
        raise typer.Exit()


@app.callback()
def root_options(
    ctx: typer.Context,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            envvar="QUANTCLI_ROOT",
            help="Dataset store root (default: quantcli.toml's [store] root, else ./datasets).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No narration or progress bars.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options, given before the sub-command."""
    from quantcli.store.catalog import check_root

    ctx.obj = Settings(
        root=check_root(resolve_root(root)), json=json_output, quiet=quiet, debug=debug
    )
    ctx.with_resource(calendar_cmd.store_calendar(ctx.obj))


data_cmd.app.command("ingest")(ingest_cmd.ingest)
data_cmd.app.command("validate")(ingest_cmd.validate)
data_cmd.app.command("rederive")(actions_cmd.rederive)
data_cmd.app.command("refresh")(refresh_cmd.refresh)
data_cmd.app.add_typer(refresh_cmd.recipe_app, name="recipe")
app.add_typer(data_cmd.app, name="data")
app.add_typer(actions_cmd.app, name="actions")
app.add_typer(calendar_cmd.app, name="calendar")
app.command("charges")(charges_cmd.charges)
app.add_typer(backtest_cmd.app, name="backtest")
app.add_typer(features_cmd.app, name="features")
app.add_typer(model_cmd.app, name="model")


def main() -> None:
    """Console-script entry point."""
    app()
