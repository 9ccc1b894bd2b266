"""`quantcli actions` commands: the corporate-actions table."""

from __future__ import annotations

import typer

app = typer.Typer(help="Corporate actions (splits, bonuses, dividends).", no_args_is_help=True)
