"""`quantcli calendar` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="calendar commands.", no_args_is_help=True)
