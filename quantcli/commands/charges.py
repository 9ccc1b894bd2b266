"""`quantcli charges`."""

from __future__ import annotations


def charges() -> None:
    """Charge breakdown of a trade."""
