"""`quantcli data ingest` and `quantcli data validate`."""

from __future__ import annotations


def ingest() -> None:
    """Ingest market data into a new dataset version."""


def validate() -> None:
    """Validate a dataset version."""
