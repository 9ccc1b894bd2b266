"""Start-up time of `quantcli --help` and `quantcli data --help` (goal < 0.3 s each)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from timing import median_time

QUANTCLI = Path(sys.executable).with_name("quantcli")


def wall(args: list[str], repeat: int = 7) -> float:
    """Median wall time of running the console script with ``args``."""
    return median_time(
        lambda: subprocess.run([str(QUANTCLI), *args], capture_output=True, check=True), repeat
    )


def run() -> list[dict[str, object]]:
    return [
        {
            "benchmark": "quantcli --help (median of 7)",
            "value": wall(["--help"]),
            "unit": "s",
            "goal": "< 0.3 s",
        },
        {
            "benchmark": "quantcli data --help (median of 7)",
            "value": wall(["data", "--help"]),
            "unit": "s",
            "goal": "< 0.3 s",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']:<40} {row['value']:.3f} {row['unit']}  (goal {row['goal']})")
