"""A self-contained HTML report of a backtest run: inline SVG charts, no script, no CDN.

The page is a pure function of its inputs (no clock, no random ids), so a reproduced run
renders byte-identical HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from quantcli.backtest.metrics import (
    Metric,
    daily_equity,
    drawdown,
    monthly_returns,
)
from quantcli.market.charges import CHARGE_COMPONENTS

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_Y = 900, 260, 80, 16, 22
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# How each metric is shown: label and format. Fractions are shown as percentages.
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("initial_cash", "Initial cash", "money"),
    ("final_equity", "Final equity", "money"),
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("volatility", "Volatility (ann.)", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("risk_free", "Risk-free rate", "pct"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_duration", "Max drawdown duration (sessions)", "int"),
    ("calmar", "Calmar", "ratio"),
    ("trades", "Trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("average_trade", "Average trade", "money"),
    ("traded_value", "Traded value", "money"),
    ("turnover", "Turnover (x mean equity)", "ratio"),
    ("exposure", "Exposure (mean)", "pct"),
    ("time_in_market", "Time in market", "pct"),
    ("orders", "Orders", "int"),
    ("fills", "Fills", "int"),
    ("bars", "Bars", "int"),
    ("sessions", "Sessions", "int"),
    ("start", "First session", "text"),
    ("end", "Last session", "text"),
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
svg{background:#fff;border:1px solid #eee}
.grid{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.warn{color:#a30;font-size:13px}
""".strip()


def fmt(value: Metric, kind: str) -> str:
    """A metric as text: '-' for None, 'inf' for an infinite ratio."""
    if value is None:
        return "-"
    if isinstance(value, str) or kind == "text":
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return "inf" if value > 0 else "-inf"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:.3f}"


def _scale(
    values: np.ndarray, low: float, high: float, out_low: float, out_high: float
) -> np.ndarray:
    span = high - low or 1.0
    return np.asarray(out_low + (values - low) / span * (out_high - out_low))


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def _year_ticks(dates: Sequence[object], xs: np.ndarray) -> str:
    """A label at the first point of each year (at most ~12 labels)."""
    years = [str(d)[:4] for d in dates]
    firsts = [i for i, y in enumerate(years) if i == 0 or y != years[i - 1]]
    step = max(1, len(firsts) // 12 + (1 if len(firsts) % 12 else 0))
    labels = []
    for i in firsts[::step]:
        labels.append(
            f'<text x="{xs[i]:.1f}" y="{HEIGHT - 4}" font-size="10" '
            f'text-anchor="middle">{years[i]}</text>'
        )
    return "".join(labels)


def line_chart(dates: Sequence[object], values: np.ndarray, *, title: str, area: bool) -> str:
    """An inline SVG line chart (an area under zero when ``area``); y labels at min and max."""
    if values.size == 0:
        return f"<p>{html.escape(title)}: no data</p>"
    low, high = float(values.min()), float(values.max())
    if area:  # zero at the top; at least a 1 % scale so a flat curve stays at the top
        high, low = 0.0, min(low, -0.01)
    elif high == low:
        low, high = low - 1.0, high + 1.0
    xs = _scale(
        np.arange(values.size, dtype=np.float64),
        0,
        max(values.size - 1, 1),
        PAD_LEFT,
        WIDTH - PAD_RIGHT,
    )
    ys = _scale(values, low, high, HEIGHT - PAD_Y, PAD_Y)
    shape = (
        f'<polygon fill="#e06666" fill-opacity="0.5" stroke="#c00" stroke-width="1" '
        f'points="{xs[0]:.1f},{PAD_Y:.1f} {_points(xs, ys)} {xs[-1]:.1f},{PAD_Y:.1f}"/>'
        if area
        else f'<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" '
        f'points="{_points(xs, ys)}"/>'
    )
    top, bottom = (
        (f"{high * 100:.1f}%", f"{low * 100:.1f}%")
        if area
        else (
            f"{high:,.0f}",
            f"{low:,.0f}",
        )
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="{PAD_LEFT}" y="14" font-size="12" font-weight="bold">'
        f"{html.escape(title)}</text>"
        f'<line x1="{PAD_LEFT}" y1="{PAD_Y}" x2="{PAD_LEFT}" y2="{HEIGHT - PAD_Y}" stroke="#999"/>'
        f'<text x="{PAD_LEFT - 4}" y="{PAD_Y + 4}" font-size="10" text-anchor="end">'
        f"{top}</text>"
        f'<text x="{PAD_LEFT - 4}" y="{HEIGHT - PAD_Y}" font-size="10" text-anchor="end">'
        f"{bottom}</text>"
        f"{shape}{_year_ticks(dates, xs)}</svg>"
    )


def _colour(ret: float, scale: float) -> str:
    """Green for gains, red for losses; full colour at ``scale`` (the table's largest move)."""
    strength = min(abs(ret) / scale, 1.0) if scale > 0 else 0.0
    fade = round(255 - strength * 155)
    return f"rgb({fade},255,{fade})" if ret >= 0 else f"rgb(255,{fade},{fade})"


def _cell(ret: float, scale: float) -> str:
    return f'<td style="background:{_colour(ret, scale)}">{ret * 100:.1f}%</td>'


def monthly_table(monthly: pl.DataFrame) -> str:
    """Year x month returns plus the compounded year, coloured relative to the largest move
    (months and years on their own scales) so small and large strategies both show contrast."""
    head = "".join(f"<th>{m}</th>" for m in MONTHS)
    rows = [f'<tr><th class="l">Year</th>{head}<th>Year</th></tr>']
    by_year: dict[int, dict[int, float]] = {}
    for year, month, ret in monthly.iter_rows():
        by_year.setdefault(year, {})[month] = ret
    years = {y: float(np.prod([1 + r for r in ms.values()]) - 1) for y, ms in by_year.items()}
    month_scale = max((abs(r) for ms in by_year.values() for r in ms.values()), default=0.0)
    year_scale = max((abs(r) for r in years.values()), default=0.0)
    for year, months in by_year.items():
        cells = [
            _cell(months[m], month_scale) if m in months else "<td></td>" for m in range(1, 13)
        ]
        cells.append(_cell(years[year], year_scale))
        rows.append(f'<tr><th class="l">{year}</th>{"".join(cells)}</tr>')
    return f"<table>{''.join(rows)}</table>"


def _kv_table(rows: Sequence[tuple[str, str]], head: tuple[str, str]) -> str:
    body = "".join(
        f'<tr><td class="l">{html.escape(k)}</td><td>{html.escape(v)}</td></tr>' for k, v in rows
    )
    return f'<table><tr><th class="l">{head[0]}</th><th>{head[1]}</th></tr>{body}</table>'


def _warnings(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<h2>Warnings</h2><ul class="warn">{items}</ul>'


def render_report(
    *,
    title: str,
    config: Mapping[str, object],
    metrics: Mapping[str, Metric],
    equity: pl.DataFrame,
    initial_cash: float,
    warnings: Sequence[str] = (),
) -> str:
    """The report page: the run's warnings first (numbers they may make wrong), then metrics,
    charges by component, equity, drawdown, monthly returns."""
    daily = daily_equity(equity)
    dates = daily["date"].to_list()
    values = daily["equity"].to_numpy().astype(np.float64)
    under = -drawdown(values, initial_cash) if values.size else values
    metric_rows = [(label, fmt(metrics.get(key), kind)) for key, label, kind in METRIC_ROWS]
    charge_rows = [
        (name, fmt(metrics.get(f"charges_{name}"), "money"))
        for name in (*CHARGE_COMPONENTS, "total")
    ]
    config_rows = [(str(k), "-" if v is None else str(v)) for k, v in sorted(config.items())]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"{_warnings(warnings)}"
        f"<h2>Equity</h2>{line_chart(dates, values, title='Equity (end of session)', area=False)}"
        f"<h2>Drawdown</h2>{line_chart(dates, under, title='Drawdown from peak', area=True)}"
        f"<h2>Monthly returns</h2>{monthly_table(monthly_returns(equity, initial_cash))}"
        '<div class="grid">'
        f"<div><h2>Metrics</h2>{_kv_table(metric_rows, ('Metric', 'Value'))}</div>"
        f"<div><h2>Charges by component</h2>{_kv_table(charge_rows, ('Component', 'Rs'))}</div>"
        f"<div><h2>Configuration</h2>{_kv_table(config_rows, ('Option', 'Value'))}</div>"
        "</div></body></html>\n"
    )
