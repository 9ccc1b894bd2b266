"""Pluggable cost models: user-defined models, registered by name, charge the fills of both
strategy kinds through the compiled replay, from Python and from the CLI, and their identity
(spec; dated rates) is hashed into the run manifest."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from numba import carray, cfunc
from test_backtest_engine import Script, Targets, cfg, flat, loaded, make_bars

# The cli fixture runs on this store: dataset px, one symbol on the sessions of 2023 H1.
from test_runs_identity import store  # noqa: F401

from quantcli.backtest import costs
from quantcli.backtest.costs import FORMULA, CostModel, parse_costs, rate_table
from quantcli.backtest.engine import simulate
from quantcli.errors import UsageError
from quantcli.market.charges import Segment

CUTOVER = date(2023, 3, 1)  # the stepped fee doubles on this session


def _fee(raw: str, spec: str) -> float:
    try:
        fee = float(raw)
    except ValueError:
        raise UsageError(f"cost model {spec!r}: fee must be a number of rupees") from None
    if not math.isfinite(fee) or fee < 0:
        raise UsageError(f"cost model {spec!r}: fee must be non-negative")
    return fee


@cfunc(FORMULA)
def _fixed_formula(
    param: float,
    row: Any,
    n_row: int,
    is_buy: int,
    quantity: float,
    price: float,
    out: Any,
    n_out: int,
) -> None:
    carray(out, n_out)[0] = param


class PerFillFee(CostModel):
    """``fee:X``: X rupees of brokerage per fill, whatever its size."""

    name = "fee"
    usage = "fee:X"
    formula = _fixed_formula

    @classmethod
    def parse(cls, raw: str) -> CostModel:
        return cls(_fee(raw, f"fee:{raw}"))


@cfunc(FORMULA)
def _stepped_formula(
    param: float,
    row: Any,
    n_row: int,
    is_buy: int,
    quantity: float,
    price: float,
    out: Any,
    n_out: int,
) -> None:
    charges = carray(out, n_out)
    charges[0] = carray(row, n_row)[0]
    if not is_buy:
        charges[1] = param * quantity * price  # a sell-side levy in the STT column


class SteppedFee(CostModel):
    """``stepped:R``: a per-fill fee of Rs 10, Rs 20 from CUTOVER (a per-session input), and
    R of a sale's turnover."""

    name = "stepped"
    usage = "stepped:R"
    formula = _stepped_formula

    @classmethod
    def parse(cls, raw: str) -> CostModel:
        return cls(_fee(raw, f"stepped:{raw}"))

    def prepare(self, segment: Segment, broker: str, days: list[date]) -> np.ndarray:
        return np.array([[10.0 if day < CUTOVER else 20.0] for day in days])

    def schedule(
        self, segment: Segment, broker: str, first: date, last: date
    ) -> list[tuple[date, tuple[float, ...]]]:
        periods = [(date.min, (10.0,)), (CUTOVER, (20.0,))]
        return [p for i, p in enumerate(periods) if p[0] <= last and (
            i + 1 == len(periods) or periods[i + 1][0] > first
        )]  # fmt: skip


class BadShape(PerFillFee):
    name = "bad"
    usage = "bad:X"

    @classmethod
    def parse(cls, raw: str) -> CostModel:
        return cls(0.0)

    def prepare(self, segment: Segment, broker: str, days: list[date]) -> np.ndarray:
        return np.zeros(len(days) + 1)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    for model in (PerFillFee, SteppedFee, BadShape):
        monkeypatch.setitem(costs.MODELS, model.name, model)


def _round_trip() -> pl.DataFrame:
    # Buy 10 at bar 1's open (2023-02-28), sell them at bar 4's open (2023-03-03).
    rows = flat(6)
    return make_bars({"AAA": rows}, start=date(2023, 2, 27)).with_columns(
        tgt=pl.Series([10.0, None, None, 0.0, None, None])
    )


def test_a_per_fill_fee_charges_signal_fills(registered: None) -> None:
    result = simulate(_round_trip(), cfg(costs="fee:20"), strategy=loaded(Targets(), "targets"))
    fills = result.fills
    assert fills["side"].to_list() == ["buy", "sell"]
    assert fills["charge_brokerage"].to_list() == [20.0, 20.0]
    assert fills["charge_total"].to_list() == [20.0, 20.0]
    assert fills["charge_stt"].to_list() == [0.0, 0.0]
    # The same run under flat:0% pays nothing, so the fee is the whole difference.
    free = simulate(_round_trip(), cfg(costs="flat:0%"), strategy=loaded(Targets(), "targets"))
    assert free.equity["equity"][-1] - result.equity["equity"][-1] == pytest.approx(40.0)


def test_a_per_fill_fee_charges_event_fills(registered: None) -> None:
    bars = make_bars({"AAA": flat(4)})
    script = Script({0: lambda ctx, bar: ctx.buy("AAA", 5), 1: lambda ctx, bar: ctx.sell("AAA", 5)})
    result = simulate(bars, cfg(costs="fee:7.5"), strategy=loaded(script, "events"))
    assert result.fills["charge_total"].to_list() == [7.5, 7.5]


def test_a_models_per_session_rows_reach_its_formula(registered: None) -> None:
    result = simulate(
        _round_trip(), cfg(costs="stepped:0.001"), strategy=loaded(Targets(), "targets")
    )
    fills = result.fills
    # The buy on 2023-02-28 pays the old fee, the sale on 2023-03-03 the new one plus 0.1 % of
    # its Rs 1,000 turnover.
    assert fills["charge_brokerage"].to_list() == [10.0, 20.0]
    assert fills["charge_stt"].to_list() == pytest.approx([0.0, 1.0])


def test_model_errors_are_usage_errors_naming_the_spec(registered: None) -> None:
    with pytest.raises(UsageError, match=r"expected statutory, flat:X%, fee:X, stepped:R, bad:X"):
        parse_costs("nope:1")
    with pytest.raises(UsageError, match=r"'fee:x'"):
        parse_costs("fee:x")
    with pytest.raises(UsageError, match="takes no parameter"):
        parse_costs("statutory:1")
    days = [date(2024, 1, 1), date(2024, 1, 2)]
    with pytest.raises(UsageError, match=r"'bad'.*shape \(3,\).*one row per session"):
        rate_table(parse_costs("bad:1"), "delivery", "zerodha", days)
    # A model without per-session input gets one dummy row per session, in one array type.
    table = rate_table(parse_costs("fee:1"), "delivery", "zerodha", days)
    assert table.shape == (2, 1) and table.flags.c_contiguous and table.flags.writeable


def test_builtin_models_keep_their_specs() -> None:
    assert parse_costs(" Statutory ").name == "statutory"
    assert parse_costs("flat:0.05%").param == pytest.approx(0.0005)
    assert parse_costs("flat:0.05").param == pytest.approx(0.0005)
    assert parse_costs("statutory").uses_broker and not parse_costs("flat:1%").uses_broker


# --- through the CLI --------------------------------------------------------------------------


def _backtest(cli, spec: str):
    res = cli(
        "--json", "backtest", "-d", "px", "-s", "sma_cross", "-p", "fast=2", "-p", "slow=4",
        "-p", "qty=10", "--costs", spec,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    out = res.json()
    return out, json.loads((Path(out["run_dir"]) / "manifest.json").read_text())


def test_a_registered_model_runs_from_the_cli_and_is_in_the_run_identity(
    cli, registered: None
) -> None:
    out, manifest = _backtest(cli, "fee:20")
    fills = pl.read_parquet(Path(out["run_dir"]) / "fills.parquet")
    assert fills.height > 0
    assert out["charges_brokerage"] == out["charges_total"] == pytest.approx(20.0 * fills.height)
    assert manifest["config"]["costs"] == "fee:20"
    # Its identity is the spec (hashed with the options): no dated rates, no broker profile.
    inputs = manifest["inputs"]
    assert inputs["charge_rates"]["used"] is False and inputs["broker"]["used"] is False
    other, _ = _backtest(cli, "fee:21")
    assert other["run_id"] != out["run_id"]
    res = cli("backtest", "reproduce", out["run_id"])
    assert res.exit_code == 0 and res.stdout.startswith("reproduced:"), res.stdout


def test_a_models_dated_rates_are_hashed_into_the_manifest(
    cli, registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, manifest = _backtest(cli, "stepped:0")
    entry = manifest["inputs"]["charge_rates"]
    assert entry["periods"] == 2  # 2023 H1 spans the cutover
    assert manifest["inputs"]["broker"]["used"] is False
    # A model whose dated rates change is named as the changed input on reproduce.
    shifted = [(date.min, (10.0,)), (CUTOVER, (30.0,))]
    monkeypatch.setattr(SteppedFee, "schedule", lambda self, *args: shifted)
    res = cli("backtest", "reproduce", out["run_id"])
    assert "input changed: charge rates" in res.stdout


LAZY = """
import sys
from quantcli.backtest.costs import parse_costs
from quantcli.backtest.slippage import parse_slippage
parse_costs("flat:0.05%")
parse_slippage("bps:5")
models = ("quantcli.backtest.costs.", "quantcli.backtest.slippage.")
print(sorted(m for m in sys.modules if m.startswith(models)))
"""


def test_a_run_imports_and_compiles_only_the_models_it_names() -> None:
    # Each built-in model's module compiles its formula on import (~0.1 s on an empty cache).
    done = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, check=True)
    loaded_models = done.stdout.strip()
    assert loaded_models == "['quantcli.backtest.costs.flat', 'quantcli.backtest.slippage.bps']"
