"""The probabilistic and deflated Sharpe ratios (quantcli.backtest.sharpe): a hand computation
with raw kurtosis, their undefined cases, and one Sharpe definition shared with the report."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantcli.backtest.metrics import SESSIONS_PER_YEAR, session_sharpe, sharpe_ratio
from quantcli.backtest.sharpe import (
    EULER_GAMMA,
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    skew_and_kurtosis,
)

RETURNS = [0.02, -0.01, 0.03, -0.02, 0.01, 0.04, -0.03, 0.02, 0.015, -0.005]


def test_psr_matches_a_hand_computation_with_raw_kurtosis() -> None:
    # By hand: T = 10, mean 0.007, sample sd 0.0225093..., SR = 0.3109832 a session;
    # central moments (divisor T) give skewness -0.2458538 and RAW kurtosis 1.9414243.
    t = len(RETURNS)
    mean = sum(RETURNS) / t
    assert mean == pytest.approx(0.007)
    sd = math.sqrt(sum((r - mean) ** 2 for r in RETURNS) / (t - 1))
    sr = mean / sd
    m2, m3, m4 = (sum((r - mean) ** k for r in RETURNS) / t for k in (2, 3, 4))
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    assert (sr, skew, kurt) == pytest.approx((0.3109832, -0.2458538, 1.9414243), abs=1e-7)
    z = sr * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    hand = NormalDist().cdf(z)
    assert hand == pytest.approx(0.8132265, abs=1e-7)
    returns = np.array(RETURNS)
    assert skew_and_kurtosis(returns) == pytest.approx((skew, kurt), rel=1e-12)
    assert probabilistic_sharpe(returns) == pytest.approx(hand, rel=1e-12)
    # Excess kurtosis (kurt - 3), as vectorbt passes it, gives another (larger) number.
    excess = NormalDist().cdf(
        sr * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 3 - 1) / 4 * sr**2)
    )
    assert excess == pytest.approx(0.8214083, abs=1e-7)
    assert probabilistic_sharpe(returns) != pytest.approx(excess, abs=1e-4)


def test_psr_is_undefined_for_short_or_flat_series() -> None:
    assert probabilistic_sharpe(np.array([0.01])) is None
    assert probabilistic_sharpe(np.zeros(20)) is None
    assert probabilistic_sharpe(np.array(RETURNS), benchmark=10.0) == pytest.approx(0.0)


def test_the_expected_best_of_n_skill_less_sharpe() -> None:
    assert expected_max_sharpe(1, 100) == 0.0
    normal = NormalDist()
    hand = (
        (1 - EULER_GAMMA) * normal.inv_cdf(0.9)
        + EULER_GAMMA * normal.inv_cdf(1 - 1 / (10 * math.e))
    ) / math.sqrt(100)
    assert expected_max_sharpe(10, 101) == pytest.approx(hand, rel=1e-12)
    assert expected_max_sharpe(100, 101) > expected_max_sharpe(10, 101)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-0.05, 0.05), min_size=5, max_size=60),
    st.integers(1, 500),
)
def test_deflation_never_raises_the_psr(values: list[float], n: int) -> None:
    returns = np.array(values)
    psr, dsr = probabilistic_sharpe(returns), deflated_sharpe(returns, n)
    assert (psr is None) == (dsr is None)
    if psr is not None and dsr is not None:
        assert dsr <= psr + 1e-12
        if n == 1:
            assert dsr == psr


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.05, 0.05), min_size=2, max_size=60))
def test_the_psr_reads_the_sharpe_the_report_annualises(values: list[float]) -> None:
    returns = np.array(values)
    per_session = session_sharpe(returns)
    annual = sharpe_ratio(returns)
    assert (per_session is None) == (annual is None)
    if per_session is None:
        assert probabilistic_sharpe(returns) is None
        return
    assert annual == per_session * math.sqrt(SESSIONS_PER_YEAR)
    g3, g4 = skew_and_kurtosis(returns)
    variance = 1 - g3 * per_session + (g4 - 1) / 4 * per_session**2
    if variance > 0:
        z = per_session * math.sqrt(returns.size - 1) / math.sqrt(variance)
        assert probabilistic_sharpe(returns) == NormalDist().cdf(z)
