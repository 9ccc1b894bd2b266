"""`quantcli doctor`: the store's health, one line per check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from quantcli.errors import QuantcliError
from quantcli.output import JsonOption, emit, literal, settings_of

if TYPE_CHECKING:
    from rich.console import Console

STYLES = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def doctor(
    ctx: typer.Context,
    deep: Annotated[
        bool, typer.Option("--deep", help="Verify every version, not only each latest.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Check the store for unattended use: exit 0 healthy, 1 when a check fails.

    Store root readable and writable, free disk, held locks, abandoned temp files, each
    dataset's and model's latest version (every version with --deep), calendar and charge-rate
    coverage, each recipe dataset's staleness, library versions against constraints.txt.
    """
    from quantcli.ops.doctor import doctor as run_doctor

    settings = settings_of(ctx, json_output)
    report = run_doctor(settings.root, deep=deep)
    failed = [c for c in report.checks if c.status == "fail"]
    error = None
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        error = QuantcliError(f"doctor: {failed[0].name}: {failed[0].detail}{more}")

    def render(console: Console) -> None:
        for check in report.checks:
            console.print(
                literal(f"{check.status:<4}", STYLES[check.status])
                + literal(f" {check.name}: {check.detail}")
            )

    emit(settings, report.to_dict(), render, error=error)
