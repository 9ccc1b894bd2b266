"""Structured log lines on stderr, for cron wrappers and log shippers (results stay on stdout).

The one place structlog is configured. Loggers are built per call on the current
``sys.stderr`` (test runners swap it) with no global ``structlog.configure``, so importing
quantcli changes nothing for a library user's own structlog set-up. structlog is imported only
when a line is logged.

A CLI invocation is one run: :func:`start_run` binds its run_id, command and dataset reference
once, and every line logged until :func:`end_run` carries them, from any thread (the
fetcher's workers log attempts). Lines are JSON (sorted keys, ISO UTC timestamp, level) or,
with the ``console`` format, structlog's key=value rendering for people; ``auto`` is console
on a terminal and JSON otherwise. Every line passes through the secrets redaction
(quantcli/core/redact.py) before it is rendered.

A cron job's event lines (fetch attempts, validation, publish, ``command.finished``) are
written when a log format is asked for (``--log-format``, ``[logging] format``,
``$QUANTCLI_LOGGING_FORMAT``); without one stderr keeps its one-line-per-failure contract with
people and scripts that read it (docs/operations.md).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal, Protocol

from quantcli.core.redact import redact_value
from quantcli.errors import UsageError

# "off" writes no log lines at all (a caller that wants only the one-line error).
LogFormat = Literal["json", "console", "auto", "off"]
FORMATS: Final = ("json", "console", "auto", "off")
LEVELS: Final = ("debug", "info", "warning", "error")
_LEVELS: Final = logging.getLevelNamesMapping()


@dataclass
class _Run:
    bound: dict[str, Any] = field(default_factory=dict)
    log_format: LogFormat = "auto"
    level: str = "info"
    events: bool = False  # whether library events (validation, publish) are logged


_lock = threading.Lock()
_run = _Run()


def check_format(value: str, where: str = "--log-format") -> LogFormat:
    """``value`` as a log format, or UsageError naming ``where`` it came from."""
    for known in FORMATS:
        if value == known:
            return known
    raise UsageError(f"{where}: unknown log format {value!r} (use json, console, auto or off)")


def check_level(value: str, where: str = "[logging] level") -> str:
    """``value`` as a log level name, or UsageError naming ``where`` it came from."""
    if value.lower() not in LEVELS:
        raise UsageError(f"{where}: unknown log level {value!r} (use {', '.join(LEVELS)})")
    return value.lower()


def start_run(
    *,
    log_format: LogFormat = "auto",
    level: str = "info",
    events: bool = False,
    **bound: Any,
) -> None:
    """Begin a run: ``bound`` (run_id, command, dataset) goes on every line from now on, in
    ``log_format``, dropping lines below ``level``; with ``events``,
    :func:`event` lines (validation, publish) are written too."""
    with _lock:
        _run.bound = {k: v for k, v in bound.items() if v is not None}
        _run.log_format = log_format
        _run.level = check_level(level)
        _run.events = events


def end_run() -> None:
    """Forget the run's bound values and format (the next run binds its own)."""
    with _lock:
        _run.bound = {}
        _run.log_format = "auto"
        _run.level = "info"
        _run.events = False


def event(name: str, **values: Any) -> None:
    """An info line ``name`` about the library's work (``dataset.validated``,
    ``dataset.published``), written only inside a run that logs events (a cron job's): a
    Python caller or an interactive listing command gets no stderr chatter from it."""
    if _events():
        logger().info(name, **values)


def _events() -> bool:
    with _lock:
        return _run.events


def _add_run(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    with _lock:
        bound = dict(_run.bound)
    for key, value in bound.items():
        event.setdefault(key, value)
    return event


def _drop(_logger: Any, _name: str, _event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    import structlog

    raise structlog.DropEvent


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    redacted: Mapping[str, Any] = redact_value(dict(event))
    return redacted


def logger(**bound: Any) -> Any:
    """A structlog logger on stderr with ``bound`` key-values (and the run's) on every line."""
    import structlog

    with _lock:
        log_format = _run.log_format
        level = _run.level
    if log_format == "auto":
        log_format = "console" if sys.stderr.isatty() else "json"

    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return structlog.wrap_logger(
        structlog.PrintLogger(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.upper()]),
        processors=[
            *([_drop] if log_format == "off" else []),
            _add_run,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
    ).bind(**bound)


class AttemptLike(Protocol):
    """What the fetcher reports of one request (quantcli.ops.http.Attempt): the logger reads
    it by these names only, so this layer need not import the cron-facing package."""

    @property
    def provider(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def status(self) -> int | None: ...
    @property
    def bytes(self) -> int: ...
    @property
    def latency_s(self) -> float: ...
    @property
    def attempt(self) -> int: ...
    @property
    def outcome(self) -> str: ...
    @property
    def day(self) -> date: ...
    @property
    def detail(self) -> str: ...


def log_attempt(attempt: AttemptLike) -> None:
    """The ``fetch.attempt`` line of one request, an ``on_attempt`` observer for the fetcher
    (info when it succeeded, a warning otherwise), written as :func:`event`'s are."""
    if not _events():
        return
    log = logger()
    line = log.info if attempt.outcome == "ok" else log.warning
    line(
        "fetch.attempt",
        provider=attempt.provider,
        url=attempt.url,
        session=attempt.day.isoformat(),
        status=attempt.status,
        bytes=attempt.bytes,
        latency_s=round(attempt.latency_s, 6),
        attempt=attempt.attempt,
        outcome=attempt.outcome,
        detail=attempt.detail or None,
    )
