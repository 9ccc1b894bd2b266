"""Printing for the CLI layer: results on stdout, narration on stderr.

``--json`` prints one JSON document on stdout (a stable schema per command); ``--quiet``
silences narration and progress bars, which cron jobs want.

Every console is made here, with rich's markup, emoji codes and highlighting off: symbols,
query cells, tags, paths and messages come from data and users, and ``[/x]`` or ``:fire:`` in
them must print as typed (markup would crash on the first and turn the second into an emoji).
Styling is applied with explicit ``Text`` styles instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from quantcli.errors import QuantcliError
from quantcli.settings import Settings

if TYPE_CHECKING:
    # rich is imported where it draws: `--help` and JSON output never load it.
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PIPE_WIDTH = 200


def stdout() -> Console:
    """A console on stdout (created per call so test runners can swap sys.stdout).

    When stdout is a pipe or file, tables get a wide fixed width instead of rich's default
    80 columns, so redirected listings are not truncated.
    """
    from rich.console import Console

    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(
        file=sys.stdout, soft_wrap=True, width=width, markup=False, emoji=False, highlight=False
    )


def stderr() -> Console:
    """A console on stderr for narration, warnings and errors."""
    from rich.console import Console

    return Console(file=sys.stderr, soft_wrap=True, markup=False, emoji=False, highlight=False)


def literal(text: str, style: str = "") -> Text:
    """``text`` as a rich Text printed exactly as given (optionally in one ``style``)."""
    from rich.text import Text

    return Text(text, style=style)


JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def settings_of(ctx: typer.Context, json_output: bool = False) -> Settings:
    """The global options stored by the root callback; a command's own ``--json``
    (``json_output``) turns JSON output on as the global one does."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("quantcli settings missing from the click context")
    return dataclasses.replace(obj, json=True) if json_output else obj


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(payload: Any) -> str:
    """Deterministic, strict JSON text: sorted keys, dates and paths as strings, and null for
    NaN and infinities (which JSON has no spelling for; most parsers reject ``NaN``)."""
    return json.dumps(
        _finite(payload),
        indent=2,
        sort_keys=True,
        default=str,
        ensure_ascii=False,
        allow_nan=False,
    )


def emit(
    settings: Settings,
    payload: Any,
    render: Callable[[Console], None],
    *,
    error: QuantcliError | None = None,
) -> None:
    """Print a command's result: ``payload`` as JSON with ``--json``, else ``render`` it.

    A command whose result is a failure (a validation with errors, a verification that found
    damage) passes the ``error`` to raise after it: with ``--json`` the payload then travels
    with the error, so stdout holds one document with both, never two.
    """
    if error is not None and settings.json:
        error.result = payload
        raise error
    if settings.json:
        sys.stdout.write(to_json(payload) + "\n")
    else:
        render(stdout())
    if error is not None:
        raise error


def print_error(as_json: bool, error: QuantcliError) -> None:
    """The report of a failed command: one line on stderr and, with ``--json``, a JSON document
    on stdout (``{"error": {...}}``, next to the command's own result when it has one), so a
    script parses stdout while its log still gets the line, as with warnings."""
    if as_json:
        result = error.result
        document = dict(result) if isinstance(result, dict) else {}
        if result is not None and not isinstance(result, dict):
            document["result"] = result
        document["error"] = error.to_dict()
        sys.stdout.write(to_json(document) + "\n")
    stderr().print(literal("error: ", "bold red") + literal(error.message))


def info(settings: Settings, message: str) -> None:
    """Narration for people, on stderr; silent with ``--quiet`` or ``--json``."""
    if not (settings.quiet or settings.json):
        stderr().print(message)


def warn(settings: Settings, message: str) -> None:
    """A warning on stderr; silent only with ``--quiet``."""
    if not settings.quiet:
        stderr().print(literal("warning: ", "yellow") + literal(message))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table with right-aligned numbers; title, headers and cells print literally."""
    from rich.table import Table

    tbl = Table(
        title=None if title is None else literal(title), show_lines=False, header_style="bold"
    )
    numeric = [
        all(isinstance(r[i], int | float) for r in rows) and rows for i in range(len(columns))
    ]
    for i, name in enumerate(columns):
        tbl.add_column(literal(name), justify="right" if numeric[i] else "left")
    for row in rows:
        tbl.add_row(*(literal("" if v is None else str(v)) for v in row))
    return tbl


class Advance(Protocol):
    """A progress bar's ``advance(n)``; ``total=`` sets the bar's total once it is known."""

    def __call__(self, n: float = 1, *, total: float | None = None) -> None: ...


@contextmanager
def progress(settings: Settings, description: str, total: float | None) -> Iterator[Advance]:
    """A progress bar on stderr; yields ``advance(n)``. Hidden when quiet, JSON or not a TTY."""
    # Imported here: rich.progress is the costliest part of rich to import, and most
    # invocations (--help included) never draw a bar.
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    enabled = not (settings.quiet or settings.json) and sys.stderr.isatty()
    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        disable=not enabled,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1, *, total: float | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, n)

        yield advance
