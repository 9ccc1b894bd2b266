"""Run every benchmark (benchmarks/bench_*.py) and print one table of measured figures.

Usage: .venv/bin/python benchmarks/run.py [NAME ...]   e.g. `run.py store engine`.
Each module exposes ``run() -> list[dict]`` with keys benchmark, value, unit, goal.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def machine() -> str:
    """A one-line description of the machine, for RESULTS.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def load(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: libraries such as backtrader look their classes' modules up there.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    wanted = set(argv)
    table = Table(title=f"quantcli benchmarks — {dt.date.today()} — {machine()}")
    for col in ("area", "benchmark", "value", "unit", "goal"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for path in sorted(HERE.glob("bench_*.py")):
        area = path.stem.removeprefix("bench_")
        if wanted and area not in wanted:
            continue
        rows = load(path).run()  # type: ignore[attr-defined]
        print(f"{area}: done", file=sys.stderr, flush=True)
        for row in rows:
            value = row["value"]
            shown = (
                f"{value:,.3f}"
                if isinstance(value, float)
                else f"{value:,}"
                if isinstance(value, int)
                else str(value)
            )
            table.add_row(
                area, str(row["benchmark"]), shown, str(row["unit"]), str(row.get("goal", ""))
            )
    # Piped into a file (as for RESULTS.md), the table keeps its rows on one line each.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
