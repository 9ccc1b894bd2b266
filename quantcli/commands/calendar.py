"""`quantcli calendar` commands: NSE holidays, sessions and session checks for cron scripts,
the coverage, and importing next year's holiday list into the store.

Thin: each command parses its arguments, calls ``quantcli.market.calendar`` and prints. The
library is imported inside the commands so ``quantcli --help`` does not load exchange_calendars.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from quantcli.core.dates import parse_date
from quantcli.core.timezone import today_ist
from quantcli.errors import CoverageError
from quantcli.output import emit, info, settings_of, table, warn

if TYPE_CHECKING:
    from rich.console import Console

    from quantcli.market.calendar import Session
    from quantcli.settings import Settings

# `is-session`: 0 a session, 1 not a session, 3 outside the calendar's coverage (so a cron
# script never takes "the calendar does not know" for "closed today").
OUTSIDE_COVERAGE_EXIT = 3


class OutsideCoverageError(CoverageError):
    """``is-session`` was asked about a date the calendar does not cover (exit 3)."""

    exit_code = OUTSIDE_COVERAGE_EXIT


@contextmanager
def store_calendar(settings: Settings) -> Iterator[None]:
    """For one CLI invocation: the calendar includes the imports of ``--root``'s store, and
    each calendar coverage warning is printed once on stderr."""
    from quantcli.market import calendar

    shown: set[str] = set()
    with warnings.catch_warnings(), calendar.using_store(settings.root):
        others = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if not issubclass(category, calendar.CoverageWarning):
                others(message, category, filename, lineno, file, line)
            elif str(message) not in shown:
                shown.add(str(message))
                warn(settings, str(message))

        warnings.simplefilter("always", calendar.CoverageWarning)
        warnings.showwarning = show
        yield


app = typer.Typer(
    help="NSE trading calendar: holidays, sessions, hours, coverage and holiday-list imports.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _hours(sess: Session) -> str:
    return ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in sess.windows)


def _session_json(sess: Session) -> dict[str, Any]:
    return {
        "date": sess.day.isoformat(),
        "weekday": f"{sess.day:%a}",
        "kind": sess.kind,
        "windows": [{"open": a.isoformat(), "close": b.isoformat()} for a, b in sess.windows],
    }


@app.command("holidays")
def holidays_cmd(
    ctx: typer.Context,
    year: Annotated[int, typer.Argument(help="Calendar year, e.g. 2026.")],
) -> None:
    """NSE trading holidays of YEAR (weekdays, as NSE lists them) with their names."""
    from quantcli.market import calendar

    rows = calendar.holidays(year)
    payload = [{"date": h.day.isoformat(), "weekday": f"{h.day:%a}", "name": h.name} for h in rows]

    def render(console: Console) -> None:
        console.print(
            table(
                f"NSE trading holidays {year}",
                ["date", "weekday", "name"],
                [[h.day.isoformat(), f"{h.day:%a}", h.name] for h in rows],
            )
        )

    emit(settings_of(ctx), payload, render)


@app.command("sessions")
def sessions_cmd(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD (inclusive).")],
    end: Annotated[str, typer.Option("--to", help="Last date, YYYY-MM-DD (inclusive).")],
) -> None:
    """Sessions between two dates, with their kind and trading hours (IST)."""
    from quantcli.market import calendar

    days = calendar.sessions(parse_date(start, "--from"), parse_date(end, "--to"))
    found = [calendar.session(day) for day in days]

    def render(console: Console) -> None:
        console.print(
            table(
                f"NSE sessions {start}..{end} ({len(found)})",
                ["date", "weekday", "kind", "hours (IST)"],
                [[s.day.isoformat(), f"{s.day:%a}", s.kind, _hours(s)] for s in found],
            )
        )

    emit(settings_of(ctx), [_session_json(s) for s in found], render)


@app.command("is-session")
def is_session_cmd(
    ctx: typer.Context,
    day: Annotated[str, typer.Argument(help="Date, YYYY-MM-DD.")],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing; only the exit status.")
    ] = False,
) -> None:
    """Exit 0 if DAY is an NSE session, 1 if not, 3 if DAY is outside the calendar's coverage
    (for cron: `... is-session $(date +%F) && run`)."""
    from quantcli.market import calendar

    when = parse_date(day, "DATE")
    try:
        reason = calendar.closure_reason(when)
    except CoverageError as exc:
        raise OutsideCoverageError(exc.message) from None
    settings = settings_of(ctx)
    if not (quiet or settings.quiet):
        payload: dict[str, Any] = {"date": when.isoformat(), "session": reason is None}
        if reason is None:
            sess = calendar.session(when)
            payload |= {"kind": sess.kind, "hours": _hours(sess)}
            line = f"{when} ({when:%a}) is an NSE session: {sess.kind}, {_hours(sess)} IST"
        else:
            payload["reason"] = reason
            line = f"{when} ({when:%a}) is not an NSE session: {reason}"
        emit(settings, payload, lambda console: console.print(line, highlight=False, markup=False))
    if reason is not None:
        raise typer.Exit(1)


@app.command("next")
def next_cmd(
    ctx: typer.Context,
    day: Annotated[
        str | None, typer.Argument(help="Date, YYYY-MM-DD (default: today in IST).")
    ] = None,
) -> None:
    """The next session after DAY (default today, IST) with its open and close times."""
    from quantcli.market import calendar

    after = parse_date(day, "DATE") if day is not None else today_ist()
    sess = calendar.session(calendar.next_session(after))
    payload = {"after": after.isoformat(), **_session_json(sess)}
    payload["open"] = calendar.session_open(sess.day).isoformat()
    payload["close"] = calendar.session_close(sess.day).isoformat()
    line = (
        f"next NSE session after {after}: {sess.day} ({sess.day:%a}), "
        f"{_hours(sess)} IST ({sess.kind})"
    )
    emit(
        settings_of(ctx),
        payload,
        lambda console: console.print(line, highlight=False, markup=False),
    )


@app.command("coverage")
def coverage_cmd(ctx: typer.Context) -> None:
    """The dates the calendar covers: bundled through 2026-12-31, plus the store's imports."""
    from quantcli.market import calendar

    first, last = calendar.coverage()
    imported = calendar.calendar().imports
    folder = calendar.imports_dir(settings_of(ctx).root)
    payload = {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "bundled_last": calendar.LAST_DAY.isoformat(),
        "imported_years": [year for year, _ in imported],
        "imports": str(folder),
    }
    years = ", ".join(str(year) for year, _ in imported)
    line = f"NSE calendar coverage: {first}..{last} (bundled through {calendar.LAST_DAY}" + (
        f"; imported {years} from {folder})" if imported else "; no imported years)"
    )
    emit(
        settings_of(ctx),
        payload,
        lambda console: console.print(line, highlight=False, markup=False),
    )


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="NSE's holiday list for one year: CSV with date and description columns "
            "(optionally day, kind, windows, pre_open for special sessions)."
        ),
    ],
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace a different list already imported for the year."),
    ] = False,
) -> None:
    """Extend the calendar's coverage through FILE's year (kept in <root>/_meta/calendar/).

    Past 2026 a weekday is a session unless listed as a holiday; a weekend day is not unless
    listed as a special session (kind special, muhurat, dr_drill or budget, with windows).
    """
    from quantcli.market import calendar

    settings = settings_of(ctx)
    result = calendar.import_year(settings.root, file, replace=replace)
    for note in result.notes:
        info(settings, f"note: {note}")
    verb = "replaced" if result.replaced else "imported" if result.created else "unchanged,"
    line = (
        f"{verb} {result.year}: {result.holidays} holiday(s), {result.special_sessions} "
        f"special session(s); coverage {result.coverage[0]}..{result.coverage[1]}"
    )
    emit(
        settings,
        result.to_dict(),
        lambda console: console.print(line, highlight=False, markup=False),
    )
