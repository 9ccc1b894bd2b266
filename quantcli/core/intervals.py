"""The bar intervals a dataset may hold (each version records its own in its manifest).

Apart from ``dtypes`` so that reading commands check an interval without importing polars.
"""

from __future__ import annotations

from typing import Final

INTERVALS: Final[tuple[str, ...]] = ("1m", "5m", "15m", "1h", "1d")
