"""Charges for 1M fills through ``charges_frame`` (goal < 1 s), and the scalar ``fill_charges``."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import polars as pl
from timing import median_time

from quantcli.market.charges import charges_frame, fill_charges

FILLS = 1_000_000


def fills(n: int = FILLS, seed: int = 0) -> pl.DataFrame:
    """``n`` random fills over every segment, both sides and 2010-2026 (all rate periods)."""
    rng = np.random.default_rng(seed)
    segments = np.array(["delivery", "intraday", "futures", "options"])
    first, last = date(2010, 1, 1).toordinal(), date(2026, 11, 30).toordinal()
    days = rng.integers(first, last + 1, n) - date(1970, 1, 1).toordinal()
    return pl.DataFrame(
        {
            "segment": segments[rng.integers(0, 4, n)],
            "side": np.where(rng.random(n) < 0.5, "buy", "sell"),
            "quantity": rng.integers(1, 2_000, n),
            "price": rng.uniform(1.0, 5_000.0, n).round(2),
            "date": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
        }
    )


def run() -> list[dict[str, object]]:
    frame = fills()
    start = time.perf_counter()
    charges_frame(frame.head(10))  # loads the rate table and the compiled kernels
    warm_up = time.perf_counter() - start
    frame_s = median_time(lambda: charges_frame(frame), repeat=5)
    scalar_s = median_time(
        lambda: [
            fill_charges("intraday", "sell", 100, 1520.0, date(2025, 6, 2)) for _ in range(10_000)
        ],
        repeat=3,
    )
    return [
        {
            "benchmark": f"charges_frame, {FILLS:,} fills (median of 5)",
            "value": frame_s,
            "unit": "s",
            "goal": "< 1 s",
        },
        {
            "benchmark": "charges_frame first call (load + compile/cache)",
            "value": warm_up,
            "unit": "s",
            "goal": "",
        },
        {
            "benchmark": "fill_charges, one fill (mean of 10,000)",
            "value": scalar_s / 10_000 * 1e6,
            "unit": "us",
            "goal": "",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(
            f"{row['benchmark']:<52} {row['value']:.3f} {row['unit']}  (goal {row['goal'] or '-'})"
        )
