"""Instruments and corporate actions: tick lookups, rounding, lots, expiries, back-adjustment."""

from __future__ import annotations

from datetime import date, timedelta

from timing import median_time

TICK_ROWS = 10_000_000
BAR_ROWS = 5_000_000
SYMBOLS = 100


def synthetic_bars(rows: int, symbols: int) -> object:
    """``rows`` daily bars over ``symbols`` symbols in the canonical schema."""
    import numpy as np
    import polars as pl

    per = rows // symbols
    start = date(1990, 1, 1)
    days = pl.Series([start + timedelta(days=i) for i in range(per)])
    rng = np.random.default_rng(0)
    frames = []
    for s in range(symbols):
        close = 100 + rng.random(per) * 10
        frames.append(
            pl.DataFrame(
                {
                    "symbol": [f"S{s:03d}"] * per,
                    "ts": days.cast(pl.Datetime("us")).dt.replace_time_zone("Asia/Kolkata"),
                    "open": close,
                    "high": close + 1,
                    "low": close - 1,
                    "close": close,
                    "volume": rng.integers(1, 10**6, per),
                }
            )
        )
    return pl.concat(frames)


def run() -> list[dict[str, object]]:
    import numpy as np

    from quantcli.market.corporate_actions import CorporateAction, back_adjust
    from quantcli.market.instruments import expiries, lot_size, round_to_tick, tick_sizes

    prices = np.random.default_rng(1).random(TICK_ROWS) * 30_000
    day = date(2025, 6, 2)
    ticks = median_time(lambda: tick_sizes(prices, day))
    rounding = median_time(lambda: [round_to_tick(1234.567, 0.05) for _ in range(100_000)])
    lot_size("NIFTY", day, "futures")  # load the master once
    lots = median_time(lambda: [lot_size("NIFTY", day, "futures") for _ in range(100_000)])
    weekly = median_time(
        lambda: expiries("NIFTY", date(2019, 1, 1), date(2026, 12, 31), weekly=True), repeat=3
    )
    bars = synthetic_bars(BAR_ROWS, SYMBOLS)
    actions = [
        CorporateAction(f"S{s:03d}", date(1995 + k, 3, 1), "split", 2.0, 0.0)
        for s in range(SYMBOLS)
        for k in range(5)
    ]
    adjust = median_time(lambda: back_adjust(bars.lazy(), actions).collect(), repeat=3)  # type: ignore[attr-defined]
    return [
        {"benchmark": f"tick_sizes, {TICK_ROWS:,} prices", "value": ticks, "unit": "s",
         "goal": "< 0.5 s"},
        {"benchmark": "round_to_tick", "value": rounding * 10, "unit": "µs/call", "goal": "< 5 µs"},
        {"benchmark": "lot_size (derivatives, warm)", "value": lots * 10, "unit": "µs/call",
         "goal": "< 20 µs"},
        {"benchmark": "expiries NIFTY weekly 2019-2026", "value": weekly * 1e3, "unit": "ms",
         "goal": "< 100 ms"},
        {"benchmark": f"back_adjust, {BAR_ROWS:,} bars, {len(actions)} splits", "value": adjust,
         "unit": "s", "goal": "< 2 s"},
    ]  # fmt: skip


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<45} {row['value']:>10.3f} {row['unit']:<8} (goal {row['goal']})")
