"""Dates given on the command line: the one parser behind every command's date flags and
arguments (``--from``, ``--to``, ``--date``, ``--train-from``, ``DATE``, ...).

Strictly ``YYYY-MM-DD``: ``date.fromisoformat`` also takes ``20240105`` and ``2024-W01-5``,
spellings a typo can produce, so they are refused rather than read as some other day.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final, overload

from quantcli.errors import UsageError

_ISO_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only


@overload
def parse_date(text: str, flag: str) -> date: ...
@overload
def parse_date(text: None, flag: str) -> None: ...
def parse_date(text: str | None, flag: str) -> date | None:
    """The date ``text`` spells as YYYY-MM-DD (None for None), else UsageError naming ``flag``:
    ``--from: expected a date YYYY-MM-DD, got '2024/01/05'``."""
    if text is None:
        return None
    if _ISO_DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise UsageError(f"{flag}: expected a date YYYY-MM-DD, got {text!r}")
