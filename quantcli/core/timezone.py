"""Exchange time: every stored timestamp and every session date is Indian Standard Time.

IST has kept UTC+05:30, without daylight saving, since 1945, so code on hot paths turns epoch
microseconds into IST wall-clock time by adding a fixed offset instead of a zone lookup per row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final, SupportsInt
from zoneinfo import ZoneInfo

TIMEZONE: Final = "Asia/Kolkata"
IST: Final = ZoneInfo(TIMEZONE)
IST_OFFSET_US: Final = 19_800_000_000
DAY_US: Final = 86_400_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def ist_datetime(micros: SupportsInt) -> datetime:
    """The tz-aware IST datetime of ``micros`` microseconds since the Unix epoch."""
    return (_EPOCH + timedelta(microseconds=int(micros))).astimezone(IST)


def today_ist() -> date:
    """Today's date on the exchange's clock."""
    return datetime.now(IST).date()
