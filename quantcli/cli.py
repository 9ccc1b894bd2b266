"""The ``quantcli`` command: global options, sub-command registration and the error edge.

Only typer, rich and the command modules are imported here; every command imports its heavy
libraries (duckdb, numba, sklearn, ...) inside the function that needs them, so
``quantcli --help`` starts fast.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer.core import TyperGroup

from quantcli import __version__
from quantcli.commands import actions as actions_cmd
from quantcli.commands import backtest as backtest_cmd
from quantcli.commands import calendar as calendar_cmd
from quantcli.commands import charges as charges_cmd
from quantcli.commands import data as data_cmd
from quantcli.commands import ingest as ingest_cmd
from quantcli.errors import QuantcliError
from quantcli.output import stderr
from quantcli.settings import Settings, resolve_root


class QuantcliGroup(TyperGroup):
    """Catches every ``QuantcliError`` once and turns it into one line and an exit code."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except QuantcliError as exc:
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if settings is not None and settings.debug:
                raise
            from rich.markup import escape

            stderr().print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
            raise typer.Exit(exc.exit_code) from None


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
    ctx.obj = Settings(root=resolve_root(root), json=json_output, quiet=quiet, debug=debug)
    ctx.with_resource(calendar_cmd.store_calendar(ctx.obj))


data_cmd.app.command("ingest")(ingest_cmd.ingest)
data_cmd.app.command("validate")(ingest_cmd.validate)
data_cmd.app.command("rederive")(actions_cmd.rederive)
app.add_typer(data_cmd.app, name="data")
app.add_typer(actions_cmd.app, name="actions")
app.add_typer(calendar_cmd.app, name="calendar")
app.command("charges")(charges_cmd.charges)
app.add_typer(backtest_cmd.app, name="backtest")


def main() -> None:
    """Console-script entry point."""
    app()
