"""The charge stack of an NSE equity trade: brokerage, STT, exchange, SEBI, stamp, GST, DP.

Rates are effective-dated and live in ``data/charge_rates.csv`` with a source per row; brokerage
comes from a broker profile (``data/brokers/<name>.toml`` or a user TOML file). For a segment,
a date and a profile the rates form one float vector (layout ``RATE_FIELDS``), and
``charges_kernel`` is the single place where a fill's charges are computed from it: the scalar
``fill_charges``, the vectorised ``charges_frame`` and the backtester all call it.

Rounding follows contract notes: STT to the nearest rupee, every other component to the paisa,
halves rounded up; GST is levied on the rounded brokerage, exchange charge and SEBI fee.
"""

from __future__ import annotations

import csv
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numba
import numpy as np

from quantcli.errors import CoverageError, DataError, NotFoundError, UsageError
from quantcli.market.segments import Segment

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CHARGE_COMPONENTS",
    "RATE_FIELDS",
    "BrokerProfile",
    "BrokerageRule",
    "ChargeBreakdown",
    "RoundTrip",
    "Segment",
    "Side",
    "breakeven_price",
    "bundled_profiles",
    "charge_rates",
    "charges_frame",
    "charges_kernel",
    "fill_charges",
    "load_profile",
    "load_rate_table",
    "profile_source",
    "rate_coverage",
    "rate_schedule",
    "rates_in_effect",
    "round_trip",
]


class Side(StrEnum):
    """Side of a fill."""

    BUY = "buy"
    SELL = "sell"


CHARGE_COMPONENTS = ("brokerage", "stt", "exchange", "sebi", "stamp", "gst", "dp")

# Layout of the rate vector the kernel reads. Percent rates are stored as fractions of turnover;
# brokerage_flat, brokerage_cap and dp are rupees per fill (dp before GST).
RATE_FIELDS = (
    "brokerage_rate",
    "brokerage_flat",
    "brokerage_cap",
    "stt_buy",
    "stt_sell",
    "exchange",
    "sebi",
    "stamp",
    "gst",
    "dp",
)
_BROK_RATE, _BROK_FLAT, _BROK_CAP, _STT_BUY, _STT_SELL, _EXCH, _SEBI, _STAMP, _GST, _DP = range(10)

# Statutory components in the rate table (the other rate fields come from the broker profile).
_STATUTORY = ("stt_buy", "stt_sell", "exchange", "sebi", "stamp", "gst")
_SEGMENTS = tuple(Segment)
_DATA = resources.files("quantcli.market") / "data"
_DEFAULT_PROFILE = "zerodha"
# Breakeven search: 2**60 times the opening price is beyond any tariff that can break even.
_MAX_DOUBLINGS = 60

_F = TypeVar("_F", bound=Callable[..., Any])


def _njit(fn: _F) -> _F:
    """``numba.njit`` with caching, typed for mypy (numba ships no annotations)."""
    return cast(_F, numba.njit(cache=True, nogil=True)(fn))


# --------------------------------------------------------------------------- the arithmetic


@_njit
def _round_half_up(value: float, scale: float) -> float:
    # The epsilon absorbs binary noise (e.g. 22.5 stored as 22.4999...) so decimal halves go up.
    return float(np.floor(value * scale + 0.5 + 1e-6)) / scale


@_njit
def charges_kernel(
    rates: np.ndarray, is_buy: bool, quantity: float, price: float, out: np.ndarray
) -> None:
    """Write the seven charge components of one fill into ``out`` (order ``CHARGE_COMPONENTS``).

    ``rates`` is a vector laid out as ``RATE_FIELDS`` (see ``charge_rates``). The one place
    where charges are computed; jitted so that batch callers can loop over fills in numba.
    """
    turnover = quantity * price
    brokerage = _round_half_up(
        min(rates[_BROK_FLAT] + rates[_BROK_RATE] * turnover, rates[_BROK_CAP]), 100.0
    )
    if is_buy:
        stt = _round_half_up(rates[_STT_BUY] * turnover, 1.0)
        stamp = _round_half_up(rates[_STAMP] * turnover, 100.0)
        dp = 0.0
    else:
        stt = _round_half_up(rates[_STT_SELL] * turnover, 1.0)
        stamp = 0.0
        # The DP charge is quoted with its GST included (Rs 13 + 18% = Rs 15.34).
        dp = _round_half_up(rates[_DP] * (1.0 + rates[_GST]), 100.0)
    exchange = _round_half_up(rates[_EXCH] * turnover, 100.0)
    sebi = _round_half_up(rates[_SEBI] * turnover, 100.0)
    gst = _round_half_up(rates[_GST] * (brokerage + exchange + sebi), 100.0)
    out[0] = brokerage
    out[1] = stt
    out[2] = exchange
    out[3] = sebi
    out[4] = stamp
    out[5] = gst
    out[6] = dp


@_njit
def _frame_kernel(
    segments: np.ndarray,
    is_buy: np.ndarray,
    quantity: np.ndarray,
    price: np.ndarray,
    days: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    rates: np.ndarray,
    out: np.ndarray,
) -> None:
    for i in range(segments.shape[0]):
        seg = segments[i]
        period = np.searchsorted(starts[seg, : counts[seg]], days[i], side="right") - 1
        charges_kernel(rates[seg, period], is_buy[i], quantity[i], price[i], out[i])


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ChargeBreakdown:
    """Charges of one fill in rupees, each rounded as on a contract note."""

    brokerage: float
    stt: float
    exchange: float
    sebi: float
    stamp: float
    gst: float
    dp: float

    @property
    def total(self) -> float:
        """Sum of the components (to the paisa)."""
        parts: list[float] = [getattr(self, name) for name in CHARGE_COMPONENTS]
        return round(sum(parts), 2)

    def to_dict(self) -> dict[str, float]:
        """The components and the total, for JSON output."""
        return {**asdict(self), "total": self.total}

    def __add__(self, other: ChargeBreakdown) -> ChargeBreakdown:
        return ChargeBreakdown(
            *(round(getattr(self, n) + getattr(other, n), 2) for n in CHARGE_COMPONENTS)
        )


@dataclass(frozen=True)
class RoundTrip:
    """A buy and a sell of the same quantity on one day, with charges, P&L and breakeven."""

    segment: Segment
    day: date
    quantity: float
    buy_price: float
    sell_price: float
    buy: ChargeBreakdown
    sell: ChargeBreakdown
    breakeven_sell_price: float | None  # None when no sell price covers the charges

    @property
    def charges(self) -> ChargeBreakdown:
        """Buy and sell charges added component by component."""
        return self.buy + self.sell

    @property
    def gross_pnl(self) -> float:
        """P&L before charges."""
        return round((self.sell_price - self.buy_price) * self.quantity, 2)

    @property
    def net_pnl(self) -> float:
        """P&L after every charge."""
        return round(self.gross_pnl - self.charges.total, 2)

    @property
    def breakeven_points(self) -> float | None:
        """Price move per unit over the buy price needed to cover the charges."""
        if self.breakeven_sell_price is None:
            return None
        return round(self.breakeven_sell_price - self.buy_price, 2)


# --------------------------------------------------------------------------- rate table


@dataclass(frozen=True)
class RateTable:
    """Effective-dated statutory rates: (component, segment) -> ((from, fraction), ...)."""

    path: str
    series: Mapping[tuple[str, Segment], tuple[tuple[date, float], ...]]

    @property
    def start(self) -> date:
        """First date on which every component of every segment has a rate."""
        return max(rows[0][0] for rows in self.series.values())


def load_rate_table(path: Path | str) -> RateTable:
    """Read and validate a rate CSV (see the header of ``data/charge_rates.csv``)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read rate table: {exc.strerror}", path=name) from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.startswith("#")]
    reader = csv.DictReader(line for _, line in lines)
    expected = ["component", "segment", "effective_from", "percent", "verified", "source"]
    if reader.fieldnames != expected:
        raise DataError(f"rate table header must be {','.join(expected)}", path=name)
    series: dict[tuple[str, Segment], list[tuple[date, float]]] = {}
    for (lineno, _), row in zip(lines[1:], reader, strict=False):
        component, segment = row["component"], row["segment"]
        if component not in _STATUTORY:
            raise DataError(f"unknown component {component!r}", path=name, row=lineno)
        if segment != "all" and segment not in _SEGMENTS:
            raise DataError(f"unknown segment {segment!r}", path=name, row=lineno)
        try:
            since = date.fromisoformat(row["effective_from"])
            fraction = float(row["percent"]) / 100.0
        except (TypeError, ValueError):
            raise DataError("bad effective_from or percent", path=name, row=lineno) from None
        if not math.isfinite(fraction) or fraction < 0:
            raise DataError(f"percent must be >= 0, got {row['percent']}", path=name, row=lineno)
        for seg in _SEGMENTS if segment == "all" else (Segment(segment),):
            series.setdefault((component, seg), []).append((since, fraction))
    for component in _STATUTORY:
        for seg in _SEGMENTS:
            if (component, seg) not in series:
                raise DataError(f"no {component} rate for segment {seg}", path=name)
    for (component, seg), rows in series.items():
        days = [d for d, _ in rows]
        if len(set(days)) != len(days):
            raise DataError(f"duplicate effective_from for {component}/{seg}", path=name)
    return RateTable(name, {key: tuple(sorted(rows)) for key, rows in series.items()})


@cache
def _rate_table() -> RateTable:
    with resources.as_file(_DATA / "charge_rates.csv") as path:
        return load_rate_table(path)


def rate_coverage() -> date:
    """First trade date the bundled rate table covers (it is open-ended after that)."""
    return _rate_table().start


# --------------------------------------------------------------------------- broker profiles


@dataclass(frozen=True)
class BrokerageRule:
    """Brokerage per executed order: ``min(flat + percent% x order value, cap)`` rupees."""

    percent: float = 0.0
    flat: float = 0.0
    cap: float = math.inf


@dataclass(frozen=True)
class BrokerProfile:
    """A broker's tariff: a brokerage rule per segment and the DP charge on delivery sells."""

    name: str
    delivery: BrokerageRule
    intraday: BrokerageRule
    futures: BrokerageRule
    options: BrokerageRule
    dp: float  # rupees per scrip-day on delivery sells, before GST
    description: str = ""
    source: str = ""

    def rule(self, segment: Segment) -> BrokerageRule:
        """The brokerage rule of ``segment``."""
        rule: BrokerageRule = getattr(self, Segment(segment).value)
        return rule


_RULE_KEYS = ("percent", "flat", "cap")
_TOP_KEYS = ("name", "description", "source", *(s.value for s in _SEGMENTS))


@cache
def bundled_profiles() -> tuple[str, ...]:
    """Names of the broker profiles shipped with quantcli."""
    return tuple(sorted(p.name.removesuffix(".toml") for p in (_DATA / "brokers").iterdir()))


def _number(value: object, where: str, key: str) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else -1.0
    if not (math.isfinite(number) and number >= 0):
        raise DataError(f"{key} must be a non-negative number, got {value!r}", path=where)
    return float(number)


def _parse_profile(doc: Mapping[str, Any], where: str) -> BrokerProfile:
    unknown = sorted(set(doc) - set(_TOP_KEYS))
    if unknown:
        raise DataError(f"unknown key {unknown[0]!r} in broker profile", path=where)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise DataError("broker profile needs a string 'name'", path=where)
    rules: dict[str, BrokerageRule] = {}
    dp = 0.0
    for seg in _SEGMENTS:
        section = doc.get(seg.value)
        if not isinstance(section, dict):
            raise DataError(f"broker profile needs a table {seg.value!r}", path=where)
        allowed = (*_RULE_KEYS, "dp") if seg is Segment.DELIVERY else _RULE_KEYS
        bad = sorted(set(section) - set(allowed))
        if bad:
            raise DataError(f"unknown key '{seg.value}.{bad[0]}' in broker profile", path=where)
        values = {k: _number(v, where, f"{seg.value}.{k}") for k, v in section.items()}
        dp = values.pop("dp", dp)
        rules[seg.value] = BrokerageRule(**values)
    return BrokerProfile(
        name=name,
        dp=dp,
        description=str(doc.get("description", "")),
        source=str(doc.get("source", "")),
        **rules,
    )


def _read_profile(path: Path, where: str) -> BrokerProfile:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise NotFoundError(f"cannot read broker profile {where}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"malformed TOML: {exc}", path=where) from None
    return _parse_profile(doc, where)


@cache
def _bundled_profile(name: str) -> BrokerProfile:
    with resources.as_file(_DATA / "brokers" / f"{name}.toml") as path:
        return _read_profile(path, f"{name}.toml")


def load_profile(name_or_path: str = _DEFAULT_PROFILE) -> BrokerProfile:
    """A bundled broker profile by name (``zerodha``, ``percent``) or a TOML file by path."""
    if name_or_path in bundled_profiles():
        return _bundled_profile(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return _read_profile(path, str(path))
    raise NotFoundError(
        f"unknown broker profile {name_or_path!r}: "
        f"use one of {', '.join(bundled_profiles())} or a .toml file"
    )


def profile_source(name_or_path: str = _DEFAULT_PROFILE) -> bytes:
    """The TOML bytes behind ``load_profile(name_or_path)``: a run manifest hashes a profile's
    content, so an edited user file changes the run's identity although its name does not."""
    if name_or_path in bundled_profiles():
        return (_DATA / "brokers" / f"{name_or_path}.toml").read_bytes()
    load_profile(name_or_path)  # a missing or malformed file fails as it does for a run
    try:
        return Path(name_or_path).read_bytes()
    except OSError as exc:
        raise NotFoundError(f"cannot read broker profile {name_or_path}: {exc.strerror}") from None


# --------------------------------------------------------------------------- rate vectors


@cache
def rate_schedule(segment: Segment, profile: BrokerProfile) -> tuple[np.ndarray, np.ndarray]:
    """Rate periods of a segment under a profile: (start days, rates).

    ``starts`` is a sorted ``datetime64[D]`` array of period starts; ``rates[i]`` is the rate
    vector (``RATE_FIELDS``) in force from ``starts[i]`` until the next start.
    """
    segment = Segment(segment)
    table = _rate_table()
    changes = {d for comp in _STATUTORY for d, _ in table.series[(comp, segment)]}
    starts = sorted({table.start} | {d for d in changes if d > table.start})
    rule = profile.rule(segment)
    dp = profile.dp if segment is Segment.DELIVERY else 0.0
    rows = [
        [
            rule.percent / 100.0,
            rule.flat,
            rule.cap,
            *(
                next(v for d, v in reversed(table.series[(comp, segment)]) if d <= start)
                for comp in _STATUTORY
            ),
            dp,
        ]
        for start in starts
    ]
    rates = np.array(rows, dtype=np.float64)
    rates.flags.writeable = False
    return np.array(starts, dtype="datetime64[D]"), rates


def rates_in_effect(
    segment: Segment | str, first: date, last: date, profile: BrokerProfile | None = None
) -> list[tuple[date, tuple[float, ...]]]:
    """The rate periods (start, ``RATE_FIELDS`` vector) in force on some day of ``first`` ..
    ``last``: exactly the rates a trade in that span can pay, for a run manifest to hash."""
    starts, rates = rate_schedule(_segment(segment), _profile(profile))
    lo = max(int(np.searchsorted(starts, np.datetime64(first, "D"), side="right")) - 1, 0)
    hi = int(np.searchsorted(starts, np.datetime64(last, "D"), side="right"))
    return [(starts[i].astype(date), tuple(float(x) for x in rates[i])) for i in range(lo, hi)]


def _profile(profile: BrokerProfile | None) -> BrokerProfile:
    return load_profile() if profile is None else profile


def _segment(segment: Segment | str) -> Segment:
    try:
        return Segment(segment)
    except ValueError:
        raise UsageError(
            f"unknown segment {segment!r}: use one of {', '.join(_SEGMENTS)}"
        ) from None


def _side(side: Side | str) -> Side:
    try:
        return Side(side)
    except ValueError:
        raise UsageError(f"unknown side {side!r}: use buy or sell") from None


def charge_rates(
    segment: Segment | str, day: date, profile: BrokerProfile | None = None
) -> np.ndarray:
    """The rate vector (``RATE_FIELDS``) for a trade in ``segment`` on ``day``.

    Raises CoverageError for a day before the rate table's first row.
    """
    starts, rates = rate_schedule(_segment(segment), _profile(profile))
    index = int(np.searchsorted(starts, np.datetime64(day, "D"), side="right")) - 1
    if index < 0:
        raise CoverageError(
            f"no charge rates for {day.isoformat()}: the rate table starts {starts[0]}"
        )
    vector: np.ndarray = rates[index]
    return vector


# --------------------------------------------------------------------------- scalar API


def _check_fill(quantity: float, price: float) -> None:
    if not (math.isfinite(quantity) and quantity > 0):
        raise UsageError(f"quantity must be a positive number, got {quantity}")
    if not (math.isfinite(price) and price > 0):
        raise UsageError(f"price must be a positive number, got {price}")


def fill_charges(
    segment: Segment | str,
    side: Side | str,
    quantity: float,
    price: float,
    day: date,
    profile: BrokerProfile | None = None,
) -> ChargeBreakdown:
    """Charges of one fill (one executed order; for delivery sells, one scrip-day)."""
    _check_fill(quantity, price)
    rates = charge_rates(segment, day, profile)
    out = np.zeros(len(CHARGE_COMPONENTS))
    charges_kernel(rates, _side(side) is Side.BUY, float(quantity), float(price), out)
    return ChargeBreakdown(*(float(v) for v in out))


def breakeven_price(
    segment: Segment | str,
    side: Side | str,
    quantity: float,
    price: float,
    day: date,
    profile: BrokerProfile | None = None,
) -> float | None:
    """Price of the closing fill at which the round trip's net P&L is zero, to the paisa.

    For a buy: the lowest sell price with net P&L >= 0. For a sell (a short): the highest buy
    price with net P&L >= 0. None when no price covers the charges (a short whose charges exceed
    its proceeds, or a tariff whose charges grow as fast as the turnover).
    Rounding makes net P&L step by up to a rupee, so the search (bisection over paise) returns
    a crossing point of the P&L, which is the breakeven for any practical size.
    """
    segment, side, profile = _segment(segment), _side(side), _profile(profile)
    _check_fill(quantity, price)
    opening = fill_charges(segment, side, quantity, price, day, profile).total
    closing_side = Side.SELL if side is Side.BUY else Side.BUY

    def net(paise: int) -> float:
        other = paise / 100.0
        move = other - price if side is Side.BUY else price - other
        closing = fill_charges(segment, closing_side, quantity, other, day, profile).total
        return move * quantity - opening - closing

    anchor = max(1, round(price * 100))
    if side is Side.BUY:
        lo, hi = anchor, anchor
        for _ in range(_MAX_DOUBLINGS):
            if net(hi) >= 0:
                break
            lo, hi = hi, hi * 2
        else:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if net(mid) < 0 else (lo, mid)
        return lo / 100.0
    if net(1) < 0:
        return None
    lo, hi = 1, anchor
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if net(mid) >= 0 else (lo, mid - 1)
    return lo / 100.0


def round_trip(
    segment: Segment | str,
    quantity: float,
    buy_price: float,
    sell_price: float,
    day: date,
    profile: BrokerProfile | None = None,
) -> RoundTrip:
    """Charges, P&L and breakeven of buying and selling ``quantity`` on ``day``."""
    segment, profile = _segment(segment), _profile(profile)
    buy = fill_charges(segment, Side.BUY, quantity, buy_price, day, profile)
    sell = fill_charges(segment, Side.SELL, quantity, sell_price, day, profile)
    breakeven = breakeven_price(segment, Side.BUY, quantity, buy_price, day, profile)
    return RoundTrip(segment, day, quantity, buy_price, sell_price, buy, sell, breakeven)


# --------------------------------------------------------------------------- vectorised API

_FRAME_COLUMNS = ("segment", "side", "quantity", "price", "date")


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def charges_frame(fills: pl.DataFrame, profile: BrokerProfile | None = None) -> pl.DataFrame:
    """Add ``charge_<component>`` and ``charge_total`` columns to a frame of fills.

    Input columns: segment (str), side ("buy"/"sell"), quantity, price (numbers), date (Date),
    and optionally symbol: the DP charge is per scrip and day, so with a symbol column only the
    first delivery sell of a symbol on a date pays it (as in the backtester); without one, each
    row is its own scrip. One jitted pass over the rows; raises DataError naming the first bad
    row and CoverageError for a date before the rate table.
    """
    import polars as pl

    missing = [c for c in _FRAME_COLUMNS if c not in fills.columns]
    if missing:
        raise DataError(f"fills frame lacks column(s) {', '.join(missing)}")
    profile = _profile(profile)
    seg_codes = (
        fills["segment"]
        .cast(pl.String)
        .replace_strict({s.value: i for i, s in enumerate(_SEGMENTS)}, default=-1)
        .cast(pl.Int64)
        .fill_null(-1)
        .to_numpy()
    )
    side = fills["side"].cast(pl.String)
    is_buy = (side == Side.BUY.value).fill_null(False).to_numpy()
    is_sell = (side == Side.SELL.value).fill_null(False).to_numpy()
    quantity = fills["quantity"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    price = fills["price"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    dates = fills["date"].cast(pl.Date)
    days_np = dates.cast(pl.Int32).fill_null(0).to_numpy().astype(np.int64)

    checks = (
        (seg_codes < 0, "unknown segment"),
        (~(is_buy | is_sell), "side must be buy or sell"),
        (~(quantity > 0) | ~np.isfinite(quantity), "quantity must be positive"),
        (~(price > 0) | ~np.isfinite(price), "price must be positive"),
        (dates.is_null().to_numpy(), "date is missing"),
    )
    for mask, problem in checks:
        if mask.any():
            row = _first_bad_row(mask)
            raise DataError(f"fills row {row}: {problem}")

    schedules = [rate_schedule(s, profile) for s in _SEGMENTS]
    first = min(int(s[0][0].astype(np.int64)) for s in schedules)
    early = days_np < first
    if early.any():
        row = _first_bad_row(early)
        raise CoverageError(
            f"fills row {row}: no charge rates before {np.datetime64(first, 'D')} "
            f"(date {dates[row - 1]})"
        )
    width = max(len(starts) for starts, _ in schedules)
    starts = np.full((len(_SEGMENTS), width), np.iinfo(np.int64).max, dtype=np.int64)
    rates = np.zeros((len(_SEGMENTS), width, len(RATE_FIELDS)))
    counts = np.zeros(len(_SEGMENTS), dtype=np.int64)
    for i, (seg_starts, seg_rates) in enumerate(schedules):
        counts[i] = len(seg_starts)
        starts[i, : counts[i]] = seg_starts.astype(np.int64)
        rates[i, : counts[i]] = seg_rates
    out = np.empty((len(fills), len(CHARGE_COMPONENTS)))
    _frame_kernel(seg_codes, is_buy, quantity, price, days_np, starts, counts, rates, out)
    if "symbol" in fills.columns:
        dp = CHARGE_COMPONENTS.index("dp")
        paying = np.flatnonzero(out[:, dp] > 0)  # delivery sells
        scrip_day = pl.struct(pl.col("symbol").cast(pl.String), pl.col("date").cast(pl.Date))
        first_sell = fills[paying].select(scrip_day.is_first_distinct()).to_series().to_numpy()
        out[paying[~first_sell], dp] = 0.0
    columns = {f"charge_{n}": out[:, i] for i, n in enumerate(CHARGE_COMPONENTS)}
    total = np.round(out.sum(axis=1), 2)
    return fills.with_columns(
        *(pl.Series(name, values) for name, values in columns.items()),
        pl.Series("charge_total", total),
    )
