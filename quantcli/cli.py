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
from quantcli.commands import doctor as doctor_cmd
from quantcli.commands import features as features_cmd
from quantcli.commands import ingest as ingest_cmd
from quantcli.commands import model as model_cmd
from quantcli.commands import refresh as refresh_cmd
from quantcli.commands import remote as remote_cmd
from quantcli.commands import sweep as sweep_cmd
from quantcli.commands import walkforward as walkforward_cmd
from quantcli.core.redact import redact, redact_value
from quantcli.errors import QuantcliError, UsageError
from quantcli.log import check_format
from quantcli.ops.run import JOBS, RUN, Run, run_of
from quantcli.output import print_error
from quantcli.settings import MetricsConfig, Settings, resolve_config

ARGV = "quantcli.argv"
COMMAND = "quantcli.command"  # (sub-command path, dataset, dry run), named before it runs
ERROR = "quantcli.error"  # the error the edge reported


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
        ctx.meta[COMMAND] = _command_of(self, ctx)
        exit_code, error = 1, None
        try:
            result = self._reported(ctx)
            exit_code = 0
        except (typer.Exit, ClickException) as exc:
            exit_code = exc.exit_code
            raise
        except QuantcliError as exc:  # only with --debug: the traceback is wanted
            exit_code, error = exc.exit_code, exc
            raise
        finally:
            problem = _finish(ctx, exit_code, ctx.meta.get(ERROR, error))
            if problem is not None and exit_code == 0:
                print_error(_wants_json(ctx), problem)
                raise typer.Exit(problem.exit_code)
            if problem is not None:
                print_error(False, problem)
        return result

    def _reported(self, ctx: ClickContext) -> Any:
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
        _redact_error(error)
        ctx.meta[ERROR] = error
        print_error(_wants_json(ctx), error)
        raise typer.Exit(error.exit_code) from None


def _redact_error(error: QuantcliError) -> None:
    """Blank the credentials in what the error edge prints (the message, the file, the
    command's own result): a URL with a token or a secret from the environment."""
    error.message = redact(error.message)
    error.args = (error.message,)
    if error.path is not None:
        error.path = redact(error.path)
    error.result = redact_value(error.result)


def _command_of(group: TyperGroup, ctx: ClickContext) -> tuple[str, str | None, bool]:
    """The sub-command path the words after the global options name (``data refresh``), its
    dataset (its NAME argument or ``--dataset``) and whether it is a ``--dry-run``, parsed
    without side effects so the run is named before it starts; ``("", None, False)`` when the
    words name no command (or ask for help)."""
    args = [*ctx._protected_args, *ctx.args]
    words: list[str] = []
    command: Any = group
    parent, params = ctx, {}
    while isinstance(command, TyperGroup) and args and not args[0].startswith("-"):
        try:
            name, sub, args = command.resolve_command(parent, args)
        except ClickException:
            break
        if sub is None or name is None:
            break
        words.append(name)
        parent = sub.make_context(name, list(args), parent=parent, resilient_parsing=True)
        params = parent.params
        command, args = sub, [*parent._protected_args, *parent.args]
    if "--help" in _options(ctx.meta.get(ARGV, [])):
        return "", None, False  # a help screen is not a run of the command
    dataset = params.get("name") or params.get("dataset")
    named = dataset if isinstance(dataset, str) else None
    return " ".join(words), named, params.get("dry_run") is True


def _finish(ctx: ClickContext, exit_code: int, error: QuantcliError | None) -> QuantcliError | None:
    run = run_of(ctx.meta)
    return None if run is None else run.finish(exit_code, error)


def _settings(ctx: ClickContext) -> Settings | None:
    return ctx.obj if isinstance(ctx.obj, Settings) else None


def _debug(ctx: ClickContext) -> bool:
    settings = _settings(ctx)
    return settings.debug if settings is not None else bool(ctx.params.get("debug"))


def _options(argv: list[str]) -> list[str]:
    """The words before a ``--`` (after it, everything is an argument)."""
    return argv[: argv.index("--")] if "--" in argv else argv


def _json_in(argv: list[str]) -> bool:
    """Whether ``--json`` is among the options (the global one or a sub-command's)."""
    return "--json" in _options(argv)


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
            help="Dataset store root (default: $QUANTCLI_ROOT, else quantcli.toml's [store] "
            "root, else ./datasets).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON on stdout.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No narration, progress bars or info log lines."),
    ] = False,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="Log lines on stderr: json, console, auto or off (default: "
            "$QUANTCLI_LOGGING_FORMAT, else quantcli.toml's [logging] format, else auto: "
            "console on a terminal, JSON otherwise).",
        ),
    ] = None,
    metrics_file: Annotated[
        str | None,
        typer.Option(
            "--metrics-file",
            help="Write node_exporter textfile metrics (PATH.prom) when an ingest, refresh, "
            "model train or backtest ends (default: quantcli.toml's [metrics]).",
        ),
    ] = None,
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

    config = resolve_config(
        {
            ("store", "root"): ("--root", root),
            ("logging", "format"): ("--log-format", log_format),
            ("metrics", "file"): ("--metrics-file", metrics_file),
        }
    )
    ctx.obj = Settings(
        root=check_root(config.root), json=json_output, quiet=quiet, debug=debug, config=config
    )
    command, dataset, dry_run = ctx.meta.get(COMMAND, ("", None, False))
    run = Run(command, dataset, ctx.obj.root, dry_run=dry_run)
    run.metrics = _metrics_path(run, config.metrics, explicit=metrics_file is not None)
    level = config.logging.level
    run.begin(
        log_format=check_format(config.logging.format or "auto"),
        level="warning" if quiet and level in ("debug", "info") else level,
    )
    ctx.meta[RUN] = run
    ctx.with_resource(calendar_cmd.store_calendar(ctx.obj))


def _metrics_path(run: Run, metrics: MetricsConfig, *, explicit: bool) -> Path | None:
    """Where the run's metrics go: only jobs write them, and a ``--metrics-file`` given to
    another command is a mistake worth one line; the directory must exist before the work."""
    if not run.is_job:
        if explicit and run.command and not run.dry_run:  # not for help or a dry run
            raise UsageError(
                f"--metrics-file applies to {', '.join(sorted(JOBS))}, not {run.command or 'this'}"
            )
        return None
    path = metrics.path_for(run.command, run.dataset and run.dataset.split("@", 1)[0])
    if path is not None and not path.parent.is_dir():
        raise UsageError(
            f"--metrics-file {path}: the directory {path.parent} does not exist "
            "(node_exporter's textfile directory, or [metrics] dir in quantcli.toml)"
        )
    return path


data_cmd.app.command("ingest")(ingest_cmd.ingest)
data_cmd.app.command("validate")(ingest_cmd.validate)
data_cmd.app.command("rederive")(actions_cmd.rederive)
data_cmd.app.command("refresh")(refresh_cmd.refresh)
data_cmd.app.add_typer(refresh_cmd.recipe_app, name="recipe")
data_cmd.app.add_typer(remote_cmd.remote_app, name="remote")
data_cmd.app.command("push")(remote_cmd.push)
data_cmd.app.command("pull")(remote_cmd.pull)
app.add_typer(data_cmd.app, name="data")
app.add_typer(actions_cmd.app, name="actions")
app.add_typer(calendar_cmd.app, name="calendar")
app.command("charges")(charges_cmd.charges)
backtest_cmd.app.add_typer(sweep_cmd.app, name="sweep")
backtest_cmd.app.command("walkforward")(walkforward_cmd.walkforward)
app.add_typer(backtest_cmd.app, name="backtest")
app.add_typer(features_cmd.app, name="features")
app.add_typer(model_cmd.app, name="model")
app.command("doctor")(doctor_cmd.doctor)


def main() -> None:
    """Console-script entry point."""
    app()
