"""Checks on a downloaded session file before anything ingests it: an intact zip archive holding
exactly one CSV, the bhavcopy layout the recipe expects, and the session's own date inside.

The layouts and the unzipping are the store's bhavcopy reader's (store/sources), so a file that
passes here is one ingest reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Final, Literal

from quantcli.errors import DataError
from quantcli.store.sources.base import ROW_COL, read_text_table, unzip_tables
from quantcli.store.sources.bhavcopy import LEGACY_LAYOUT, UDIFF_LAYOUT, Layout, detect_layout

BhavcopyKind = Literal["legacy", "udiff"]
LAYOUTS: Final[dict[str, Layout]] = {"legacy": LEGACY_LAYOUT, "udiff": UDIFF_LAYOUT}
_ZIP_MAGIC: Final = b"PK"
# A check turns one session's downloaded bytes into its CSV, or raises BadDownload.
Check = Callable[[date, bytes], bytes]


class BadDownload(DataError):  # noqa: N818 (the name issue 12's interface uses)
    """A provider served a file that is not the session's bhavcopy: a broken or unexpected
    archive, another layout, or another session's file.

    ``problem`` is the one-line reason and ``day`` the session asked for; ``wrong_session``
    tells a file for another date from a damaged one. The fetcher's final BadDownload names
    each provider and URL in its problem.
    """

    def __init__(self, problem: str, *, day: date, wrong_session: bool = False) -> None:
        super().__init__(f"{day.isoformat()}: {problem}")
        self.problem = problem
        self.day = day
        self.wrong_session = wrong_session


def check_download(day: date, content: bytes, kind: BhavcopyKind) -> bytes:
    """The CSV inside ``content``, a zipped bhavcopy of layout ``kind`` for session ``day``.

    Raises BadDownload for content that is not a zip (an HTML error page served with 200), a
    truncated or corrupt archive, anything but exactly one CSV member, another layout (or none),
    a CSV cut mid-row, and dates other than ``day`` in the file's date column.
    """
    if not content.startswith(_ZIP_MAGIC):
        head = content[:40].decode("utf-8", "replace").split("\n")[0]
        raise BadDownload(f"not a zip archive (it starts {head!r})", day=day)
    try:
        tables = unzip_tables(content, "download")
        if len(tables) != 1:
            names = ", ".join(t.name for t in tables)
            raise BadDownload(f"expected one CSV in the zip, found {len(tables)}: {names}", day=day)
        (table,) = tables
        raw = read_text_table(table.content, table.name)
        layout = detect_layout([c for c in raw.columns if c != ROW_COL], table.name)
    except BadDownload:
        raise
    except DataError as exc:
        raise BadDownload(exc.message.removeprefix("download: "), day=day) from None
    expected = LAYOUTS[kind]
    if layout is not expected:
        raise BadDownload(
            f"{table.name}: the layout changed: expected {expected.name}, found {layout.name}",
            day=day,
        )
    column = next(src for src, dst in layout.mapping.items() if dst == "ts")
    found = sorted(_session_dates(raw[column].unique().to_list(), layout, table.name, day))
    if found != [day]:
        shown = ", ".join(d.isoformat() for d in found[:3])
        raise BadDownload(
            f"{table.name}: the file is for {shown}, not this session", day=day, wrong_session=True
        )
    return table.content


def bhavcopy_check(kind: BhavcopyKind) -> Check:
    """The ``Check`` for zipped bhavcopies of layout ``kind`` (what ``Fetcher.fetch`` takes)."""

    def check(day: date, content: bytes) -> bytes:
        return check_download(day, content, kind)

    return check


def _session_dates(values: list[str | None], layout: Layout, name: str, day: date) -> set[date]:
    dates = set()
    for value in values:
        try:
            dates.add(datetime.strptime((value or "").strip(), layout.date_format).date())
        except ValueError:
            raise BadDownload(
                f"{name}: {value!r} in {layout.name}'s date column is not a date", day=day
            ) from None
    return dates
