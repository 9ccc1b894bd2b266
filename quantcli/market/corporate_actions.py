"""Corporate actions (splits, bonuses, dividends) and back-adjustment of bars.

The table format is NSE's corporate-actions export (columns SYMBOL, COMPANY NAME, SERIES,
PURPOSE, FACE VALUE, EX-DATE, RECORD DATE, BC START DATE, BC END DATE; EX-DATE like
04-Jan-2017). Actions come from the bundled table (``data/corporate_actions.csv``) plus the
user's imports in ``<root>/_meta/corporate_actions.csv``, which win over the bundled table for
the same symbol, ex-date and kind (a correction).

The bundled table holds the bundled sample's splits and bonuses only (JSWSTEEL split Rs 10 ->
Re 1 ex 2017-01-04; BAJAJ-AUTO bonus 1:1 ex 2010-09-08), each visible as the one overnight gap
of its ratio in datasets/_raw/nse-daily-sample. No dividends are bundled: none could be cited
from a primary source here; import NSE's export with ``quantcli actions import`` to add them.

Back-adjustment is for research: prices before an ex-date are divided by the cumulative
split/bonus ratio and volumes multiplied, so a series has no artificial gap at a split.
Dividends do NOT adjust prices (that would be a total-return series); they are parsed and listed
so a strategy can account for them explicitly. Bars are never rounded to the tick after
adjustment.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from quantcli.core.files import atomic_write_bytes
from quantcli.core.lock import dataset_lock
from quantcli.errors import ConflictError, DataError, NotFoundError

if TYPE_CHECKING:
    import polars as pl

BUNDLED_FILE: Final = Path(__file__).resolve().parent / "data" / "corporate_actions.csv"
META_DIR: Final = "_meta"
USER_FILE: Final = "corporate_actions.csv"

COLUMNS: Final = (
    "SYMBOL",
    "COMPANY NAME",
    "SERIES",
    "PURPOSE",
    "FACE VALUE",
    "EX-DATE",
    "RECORD DATE",
    "BC START DATE",
    "BC END DATE",
)
REQUIRED_COLUMNS: Final = ("SYMBOL", "PURPOSE", "EX-DATE")
KINDS: Final = ("split", "bonus", "dividend")
EX_DATE_FORMAT: Final = "%d-%b-%Y"

PRICE_COLUMNS: Final = ("open", "high", "low", "close", "vwap", "prev_close")
# Share counts scale with the ratio; trades (a count of executions) and turnover (rupees) do not.
VOLUME_COLUMNS: Final = ("volume", "deliverable_volume", "oi")

# PURPOSE grammar. NSE joins several announcements with "/" or "And" ("AGM/Dividend - Rs 5 Per
# Share", "Bonus 1:1 And Dividend - Rs 2 Per Share"); every part must be read, or the row is
# refused. A "/" directly before "-" belongs to an amount ("Rs 10/-").
_PARTS = re.compile(r"\s*(?:/(?!-)|\band\b|&|;)\s*", re.IGNORECASE)
_RS = r"(?:rs|re|inr)\.?\s*"
_NUM = r"(\d+(?:\.\d+)?)"
_AMOUNT = rf"{_RS}{_NUM}\s*(?:/-)?"
_PER_SHARE = r"(?:\s*per\s*(?:equity\s*)?(?:share|sh\.?))?"
_FACE_SPLIT = re.compile(
    rf"(?:face\s*value\s*)?(?:stock\s*)?(?:split|sub-?division)\s*(?:\(\s*sub-?division\s*\))?"
    rf"\s*(?:of\s*(?:equity\s*)?shares\s*)?-?\s*from\s*{_AMOUNT}{_PER_SHARE}\s*to\s*{_AMOUNT}"
    rf"{_PER_SHARE}",
    re.IGNORECASE,
)
_RATIO_SPLIT = re.compile(r"(?:stock\s*)?split\s*-?\s*(\d+)\s*:\s*(\d+)", re.IGNORECASE)
_BONUS = re.compile(r"bonus\s*(?:issue\s*)?-?\s*(\d+)\s*:\s*(\d+)", re.IGNORECASE)
_DIVIDEND_WORDS = r"(?:(?:interim|final|special|annual|\d+(?:st|nd|rd|th))\s*)*(?:dividend|div\.?)"
_DIVIDEND = re.compile(rf"{_DIVIDEND_WORDS}\s*-?\s*{_AMOUNT}{_PER_SHARE}", re.IGNORECASE)
_DIVIDEND_PCT = re.compile(rf"{_DIVIDEND_WORDS}\s*-?\s*{_NUM}\s*%", re.IGNORECASE)
_RIGHTS = re.compile(r"rights?\b.*", re.IGNORECASE)
# Purposes that move no price NSE adjusts for; a dividend announced without its amount cannot
# be recorded either (dividends never adjust prices here).
_NON_ADJUSTING: Final = {
    "agm": re.compile(r"agm|annual\s*general\s*meeting", re.IGNORECASE),
    "egm": re.compile(r"egm|extra-?\s*ordinary\s*general\s*meeting", re.IGNORECASE),
    "buyback": re.compile(r"buy\s*-?\s*back(?:\s*of\s*(?:equity\s*)?shares)?", re.IGNORECASE),
    "dividend without an amount": re.compile(_DIVIDEND_WORDS, re.IGNORECASE),
    "interest payment": re.compile(r"interest\s*payment", re.IGNORECASE),
    "redemption": re.compile(r"(?:final\s*)?redemption(?:\s*of\s*\w+)*", re.IGNORECASE),
    "income distribution": re.compile(
        r"(?:income\s*)?distribution(?:\s*\(?(?:invit|reit)\)?)?", re.IGNORECASE
    ),
}


class UnreadablePurposeError(ValueError):
    """A PURPOSE text (or a part of it) that the grammar cannot read."""


class RightsIssueError(ValueError):
    """A rights issue: NSE adjusts prices for it by the theoretical ex-rights price, which
    depends on the market price and is not modelled here."""


@dataclass(frozen=True)
class CorporateAction:
    """One action on one symbol.

    ``ratio`` is shares after per share before (split Rs 10 -> Re 1: 10.0; bonus 1:1: 2.0;
    dividends 1.0); ``amount`` is the dividend in rupees per share (0 for splits and bonuses).
    """

    symbol: str
    ex_date: date
    kind: str
    ratio: float
    amount: float

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "symbol": self.symbol,
            "ex_date": self.ex_date.isoformat(),
            "kind": self.kind,
            "ratio": self.ratio,
            "amount": self.amount,
        }


@dataclass(frozen=True)
class SkippedRow:
    """A row whose PURPOSE adjusts no price (AGM, buyback, ...): ``reason`` names what it is."""

    row: int
    symbol: str
    purpose: str
    reason: str = ""


@dataclass(frozen=True)
class ActionsFile:
    """A parsed corporate-actions file: the actions, their raw rows, and what was skipped."""

    path: Path
    actions: tuple[CorporateAction, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]  # recognised rows with line numbers, verbatim
    skipped: tuple[SkippedRow, ...]


@dataclass(frozen=True)
class ImportResult:
    """What ``import_actions`` did to the user table."""

    table: Path
    added: int
    duplicates: int
    skipped: tuple[SkippedRow, ...]
    total: int

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return {
            "table": str(self.table),
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": [
                {"row": s.row, "symbol": s.symbol, "purpose": s.purpose, "reason": s.reason}
                for s in self.skipped
            ],
            "total": self.total,
        }


# --------------------------------------------------------------------------- parsing


def read_purpose(
    purpose: str, *, face_value: float | None = None, skip_rights: bool = False
) -> tuple[list[tuple[str, float, float]], list[str]]:
    """The (kind, ratio, amount) terms a PURPOSE announces and the names of its parts that
    adjust no price.

    ``UnreadablePurposeError`` for a part the grammar cannot read, ``RightsIssueError`` for a rights
    issue unless ``skip_rights`` (then it is listed as ignored), ``ValueError`` for zero terms.
    A split written as a ratio ("Split 1:5") multiplies the shares by the larger term over the
    smaller (a consolidation is never called a split). A dividend in percent needs the face
    value. Several dividends add up to one.
    """
    terms: list[tuple[str, float, float]] = []
    ignored: list[str] = []
    dividends: list[float] = []
    text = " ".join(purpose.split())
    parts = [part for part in _PARTS.split(text) if part]
    if not parts:
        raise UnreadablePurposeError(f"cannot read PURPOSE {purpose!r}")
    for part in parts:
        if match := _FACE_SPLIT.fullmatch(part):
            before, after = float(match.group(1)), float(match.group(2))
            if before <= 0 or after <= 0:
                raise ValueError(f"split face values must be positive in {purpose!r}")
            terms.append(("split", before / after, 0.0))
        elif match := _RATIO_SPLIT.fullmatch(part):
            low, high = sorted((int(match.group(1)), int(match.group(2))))
            if low <= 0:
                raise ValueError(f"split terms must be positive in {purpose!r}")
            if low == high:
                raise ValueError(f"split {low}:{high} changes nothing in {purpose!r}")
            terms.append(("split", high / low, 0.0))
        elif match := _BONUS.fullmatch(part):
            new, held = int(match.group(1)), int(match.group(2))
            if new <= 0 or held <= 0:
                raise ValueError(f"bonus terms must be positive in {purpose!r}")
            terms.append(("bonus", (new + held) / held, 0.0))
        elif match := _DIVIDEND.fullmatch(part):
            dividends.append(float(match.group(1)))
        elif (match := _DIVIDEND_PCT.fullmatch(part)) and face_value is not None:
            dividends.append(float(match.group(1)) / 100 * face_value)
        elif _RIGHTS.fullmatch(part):
            if not skip_rights:
                raise RightsIssueError(
                    f"rights issue in PURPOSE {purpose!r}: NSE adjusts prices for rights, which "
                    "quantcli does not model; pass --skip-rights to import the other rows"
                )
            ignored.append("rights")
        else:
            kind = next((k for k, rx in _NON_ADJUSTING.items() if rx.fullmatch(part)), None)
            if kind is None:
                raise UnreadablePurposeError(f"cannot read PURPOSE {purpose!r}")
            ignored.append(kind)
    if dividends:
        terms.append(("dividend", 1.0, round(sum(dividends), 6)))
    return terms, ignored


def parse_purpose(
    symbol: str,
    ex_date: date,
    purpose: str,
    *,
    face_value: float | None = None,
    skip_rights: bool = False,
) -> list[CorporateAction]:
    """The split, bonus and dividend actions a PURPOSE text announces (empty when it announces
    only purposes that adjust no price); see ``read_purpose`` for what is refused."""
    terms, _ = read_purpose(purpose, face_value=face_value, skip_rights=skip_rights)
    return [CorporateAction(symbol, ex_date, kind, ratio, amount) for kind, ratio, amount in terms]


def _face_value(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value > 0 else None


def parse_actions_csv(path: Path, *, skip_rights: bool = False) -> ActionsFile:
    """Read a file in NSE's corporate-actions export format.

    Rows whose PURPOSE adjusts no price (AGM, buyback, rights with ``skip_rights``) are skipped
    and listed in ``skipped``. ``DataError`` (file and row) for a missing column, an empty
    symbol, a bad EX-DATE or a PURPOSE it cannot read.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(f"cannot read as UTF-8 text: {exc}", path=str(path)) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise DataError("empty file (expected NSE corporate-actions columns)", path=str(path))
    names = [h.strip().upper() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataError(f"missing columns {', '.join(missing)}", path=str(path), row=1)
    actions: list[CorporateAction] = []
    rows: list[tuple[int, dict[str, str]]] = []
    skipped: list[SkippedRow] = []
    for cells in reader:
        row_no = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(names):
            raise DataError(
                f"expected {len(names)} fields, found {len(cells)}", path=str(path), row=row_no
            )
        rec = {n: c.strip() for n, c in zip(names, cells, strict=True)}
        symbol = rec["SYMBOL"].upper()
        if not symbol:
            raise DataError("empty SYMBOL", path=str(path), row=row_no)
        try:
            ex_date = parse_ex_date(rec["EX-DATE"])
            terms, ignored = read_purpose(
                rec["PURPOSE"],
                face_value=_face_value(rec.get("FACE VALUE")),
                skip_rights=skip_rights,
            )
        except UnreadablePurposeError as exc:
            raise DataError(
                f"{exc} for {symbol} (fix or remove the row)", path=str(path), row=row_no
            ) from None
        except ValueError as exc:
            raise DataError(f"{symbol}: {exc}", path=str(path), row=row_no) from None
        if not terms:
            skipped.append(SkippedRow(row_no, symbol, rec["PURPOSE"], ", ".join(ignored)))
            continue
        actions.extend(CorporateAction(symbol, ex_date, k, r, a) for k, r, a in terms)
        rows.append((row_no, rec))
    return ActionsFile(path, tuple(actions), tuple(rows), tuple(skipped))


def load_actions_csv(path: Path) -> list[CorporateAction]:
    """The actions in a stored NSE corporate-actions table (a rights part of a row imported
    with ``--skip-rights`` stays skipped; see ``parse_actions_csv``)."""
    return list(parse_actions_csv(path, skip_rights=True).actions)


def parse_ex_date(text: str) -> date:
    """An NSE EX-DATE (``04-Jan-2017``; ISO ``2017-01-04`` also accepted)."""
    value = text.strip()
    for fmt in (EX_DATE_FORMAT, "%Y-%m-%d"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value, fmt).date()
    raise ValueError(f"EX-DATE {text!r} is not a date like 04-Jan-2017")


# --------------------------------------------------------------------------- tables


def user_table(root: Path) -> Path:
    """Where the user's imported actions live in a store."""
    return root / META_DIR / USER_FILE


def bundled_actions() -> list[CorporateAction]:
    """The actions shipped with quantcli (the bundled sample's real splits and bonuses)."""
    return load_actions_csv(BUNDLED_FILE)


def actions_for(symbols: Iterable[str] | None, root: Path | None = None) -> list[CorporateAction]:
    """Bundled actions plus ``<root>/_meta/corporate_actions.csv``, for ``symbols`` (all if None).

    A user action replaces a bundled one with the same symbol, ex-date and kind. Sorted by
    symbol, ex-date and kind.
    """
    merged: dict[tuple[str, date, str], CorporateAction] = {}
    sources = [bundled_actions()]
    if root is not None and user_table(root).is_file():
        sources.append(load_actions_csv(user_table(root)))
    for source in sources:
        for action in source:
            merged[_key(action)] = action
    wanted = None if symbols is None else {s.upper() for s in symbols}
    chosen = [a for a in merged.values() if wanted is None or a.symbol in wanted]
    return sorted(chosen, key=_key)


def import_actions(root: Path, path: Path, *, skip_rights: bool = False) -> ImportResult:
    """Validate ``path`` and merge its price-adjusting rows into the store's user table.

    Every PURPOSE must be read: one the grammar cannot read, or a rights issue unless
    ``skip_rights``, is a DataError and nothing of the file is imported. Written atomically
    under the store's metadata lock (``dataset_lock(root, "_meta")``, as calendar imports are);
    re-importing the same rows adds nothing.
    ``ConflictError`` when a row contradicts an action already in the table (same symbol,
    ex-date and kind, different terms): fix the file rather than silently overwrite.
    """
    incoming = parse_actions_csv(path, skip_rights=skip_rights)
    table = user_table(root)
    with dataset_lock(root, META_DIR):
        existing = parse_actions_csv(table, skip_rights=True) if table.is_file() else None
        rows = [rec for _, rec in existing.rows] if existing else []
        known = {_key(a): a for a in (existing.actions if existing else ())}
        seen_rows = {_row_key(r) for r in rows}
        added = duplicates = 0
        for row_no, rec in incoming.rows:
            if _row_key(rec) in seen_rows:
                duplicates += 1
                continue
            found = parse_purpose(
                rec["SYMBOL"].upper(),
                parse_ex_date(rec["EX-DATE"]),
                rec["PURPOSE"],
                face_value=_face_value(rec.get("FACE VALUE")),
                skip_rights=True,  # the file was read with skip_rights above
            )
            for action in found:
                old = known.get(_key(action))
                if old is not None and old != action:
                    raise ConflictError(
                        f"{path}:{row_no}: {action.symbol} {action.kind} ex "
                        f"{action.ex_date.isoformat()} "
                        f"conflicts with the stored one in {table} (ratio {old.ratio:g}, "
                        f"amount {old.amount:g})"
                    )
            if all(known.get(_key(a)) == a for a in found):
                duplicates += 1  # same actions under another PURPOSE spelling
                continue
            known.update({_key(a): a for a in found})
            seen_rows.add(_row_key(rec))
            rows.append(rec)
            added += 1
        if added:
            _write_table(table, rows)
    return ImportResult(table, added, duplicates, incoming.skipped, len(rows))


# --------------------------------------------------------------------------- adjustment


def back_adjust(bars: pl.LazyFrame, actions: Sequence[CorporateAction]) -> pl.LazyFrame:
    """Back-adjust bars for splits and bonuses (dividends are ignored).

    For a bar dated before an ex-date of its symbol, prices (open/high/low/close/vwap/prev_close,
    those present) are divided by the product of the ratios of all later ex-dates and share
    counts (volume/deliverable_volume/oi) multiplied by it, rounded back to Int64. The bar on the
    ex-date itself is already post-action. Row order, columns and dtypes are preserved.
    """
    import polars as pl

    events = [a for a in actions if a.kind in ("split", "bonus")]
    if not events:
        return bars
    columns = bars.collect_schema().names()
    steps, width = _factor_steps(events)
    # Bars are stamped in IST, so "dated before the ex-date" is "ts before its 00:00 IST".
    factor = pl.coalesce(
        [
            pl.when(pl.col("ts") < pl.col(f"__ex{i}")).then(pl.col(f"__factor{i}"))
            for i in range(width)
        ]
        + [pl.lit(1.0)]
    )
    updates = [(pl.col(c) / pl.col("__factor")).alias(c) for c in PRICE_COLUMNS if c in columns]
    updates += [
        (pl.col(c).cast(pl.Float64) * pl.col("__factor")).round(0).cast(pl.Int64).alias(c)
        for c in VOLUME_COLUMNS
        if c in columns
    ]
    return (
        bars.join(steps.lazy(), on="symbol", how="left", maintain_order="left")
        .with_columns(factor.alias("__factor"))
        .with_columns(updates)
        .select(columns)
    )


def split_ratios(actions: Iterable[CorporateAction]) -> dict[str, dict[date, float]]:
    """Shares after per share before, by symbol and ex-date, of the splits and bonuses among
    ``actions`` (a split and a bonus on one day compound; dividends are not counted)."""
    ratios: dict[str, dict[date, float]] = {}
    for a in actions:
        if a.kind in ("split", "bonus"):
            per_day = ratios.setdefault(a.symbol, {})
            per_day[a.ex_date] = per_day.get(a.ex_date, 1.0) * a.ratio
    return ratios


def _factor_steps(events: Sequence[CorporateAction]) -> tuple[pl.DataFrame, int]:
    """One row per symbol: its ex-dates ascending (``__ex0``, ``__ex1``, ... as 00:00 IST) and
    for each the factor a bar before it is divided by (that ratio times every later one). A
    join by symbol plus a few comparisons beats sorting millions of bars for an as-of join."""
    import polars as pl

    from quantcli.core.dtypes import TS_DTYPE

    ratios = split_ratios(events)
    width = max(len(days) for days in ratios.values())
    data: dict[str, list[object]] = {"symbol": list(ratios)}
    for i in range(width):
        data[f"__ex{i}"], data[f"__factor{i}"] = [], []
    for days in ratios.values():
        ordered = sorted(days.items())
        cumulative = [1.0] * len(ordered)
        product = 1.0
        for k in range(len(ordered) - 1, -1, -1):
            product *= ordered[k][1]
            cumulative[k] = product
        for i in range(width):
            data[f"__ex{i}"].append(
                datetime.combine(ordered[i][0], datetime.min.time()) if i < len(ordered) else None
            )
            data[f"__factor{i}"].append(cumulative[i] if i < len(ordered) else None)
    schema: dict[str, pl.DataType] = {"symbol": pl.String()}
    for i in range(width):
        schema[f"__ex{i}"] = pl.Datetime("us")
        schema[f"__factor{i}"] = pl.Float64()
    frame = pl.DataFrame(data, schema=schema).with_columns(
        pl.col(f"__ex{i}").dt.replace_time_zone(TS_DTYPE.time_zone) for i in range(width)
    )
    return frame, width


# --------------------------------------------------------------------------- helpers


def _key(action: CorporateAction) -> tuple[str, date, str]:
    return (action.symbol, action.ex_date, action.kind)


def _row_key(rec: dict[str, str]) -> tuple[str, date, str]:
    purpose = " ".join(rec["PURPOSE"].lower().split())
    return (rec["SYMBOL"].upper(), parse_ex_date(rec["EX-DATE"]), purpose)


def _write_table(table: Path, rows: Sequence[dict[str, str]]) -> None:
    ordered = sorted(rows, key=lambda r: (r["SYMBOL"].upper(), parse_ex_date(r["EX-DATE"])))
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(COLUMNS)
    for rec in ordered:
        writer.writerow([rec.get(c) or "-" for c in COLUMNS])
    atomic_write_bytes(table, out.getvalue().encode("utf-8"))
