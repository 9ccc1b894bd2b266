"""Printing for the CLI layer: results on stdout, narration on stderr.

``--json`` prints one JSON document on stdout (a stable schema per command); ``--quiet``
silences narration and progress bars, which cron jobs want.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from quantcli.settings import Settings

if TYPE_CHECKING:
    # rich is imported where it draws: `--help` and JSON output never load it.
    from rich.console import Console
    from rich.table import Table

PIPE_WIDTH = 200


def stdout() -> Console:
    """A console on stdout (created per call so test runners can swap sys.stdout).

    When stdout is a pipe or file, tables get a wide fixed width instead of rich's default
    80 columns, so redirected listings are not truncated.
    """
    from rich.console import Console

    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, soft_wrap=True, width=width)


def stderr() -> Console:
    """A console on stderr for narration, warnings and errors."""
    from rich.console import Console

    return Console(file=sys.stderr, soft_wrap=True)


def settings_of(ctx: typer.Context) -> Settings:
    """The global options stored by the root callback."""
    obj = ctx.find_root().obj
    if not isinstance(obj, Settings):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("quantcli settings missing from the click context")
    return obj


def to_json(payload: Any) -> str:
    """Deterministic JSON text: sorted keys, dates and paths as strings."""
    return json.dumps(payload, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def emit(settings: Settings, payload: Any, render: Callable[[Console], None]) -> None:
    """Print a command's result: ``payload`` as JSON with ``--json``, else ``render`` it."""
    if settings.json:
        sys.stdout.write(to_json(payload) + "\n")
    else:
        render(stdout())


def info(settings: Settings, message: str) -> None:
    """Narration for people, on stderr; silent with ``--quiet`` or ``--json``."""
    if not (settings.quiet or settings.json):
        stderr().print(message)


def warn(settings: Settings, message: str) -> None:
    """A warning on stderr; silent only with ``--quiet``."""
    if not settings.quiet:
        stderr().print(f"[yellow]warning:[/] {message}", highlight=False)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table with right-aligned numbers."""
    from rich.table import Table

    tbl = Table(title=title, show_lines=False, header_style="bold")
    numeric = [
        all(isinstance(r[i], int | float) for r in rows) and rows for i in range(len(columns))
    ]
    for i, name in enumerate(columns):
        tbl.add_column(name, justify="right" if numeric[i] else "left")
    for row in rows:
        tbl.add_row(*("" if v is None else str(v) for v in row))
    return tbl


@contextmanager
def progress(
    settings: Settings, description: str, total: float | None
) -> Iterator[Callable[[float], None]]:
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
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        disable=not enabled,
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: float = 1) -> None:
            bar.advance(task, n)

        yield advance
