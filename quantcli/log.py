"""Structured log lines: one JSON object a line on stderr, for cron wrappers and log shippers.

The one place structlog is configured. Loggers are built per call on the current
``sys.stderr`` (test runners swap it) with no global ``structlog.configure``, so importing
quantcli changes nothing for a library user's own structlog set-up. structlog is imported only
when a line is logged: ``--help`` and the data commands never load it.
"""

from __future__ import annotations

import sys
from typing import Any


def logger(**bound: Any) -> Any:
    """A structlog logger writing JSON lines (sorted keys, ISO UTC timestamp, level) to
    stderr, with ``bound`` key-values on every line it writes."""
    import structlog

    return structlog.wrap_logger(
        structlog.PrintLogger(file=sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
    ).bind(**bound)
