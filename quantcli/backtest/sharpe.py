"""How far a Sharpe ratio can be trusted: the probabilistic and deflated Sharpe ratios of daily
returns (Bailey and Lopez de Prado), for comparing models and for walk-forward sweeps.

- The probabilistic Sharpe ratio is the probability that the true per-session Sharpe ratio
  exceeds a benchmark SR*: ``Phi((SR - SR*) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 *
  SR^2))`` with SR the per-session Sharpe ratio (quantcli.backtest.metrics.session_sharpe, the
  one the report annualises), T the sessions, g3 the skewness and g4 the raw kurtosis
  (``m4 / m2^2``, 3 for a normal; excess kurtosis, which a common implementation passes,
  understates the denominator and inflates the result).
- The deflated form takes as SR* the Sharpe ratio the best of N skill-less candidates would be
  expected to show, ``sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))``
  (gamma the Euler-Mascheroni constant). The trials' Sharpe ratios are not kept, so V is the
  variance of a skill-less Sharpe estimate, ``1 / (T - 1)``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from quantcli.backtest.metrics import session_sharpe

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def skew_and_kurtosis(returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness ``m3 / m2^1.5`` and raw kurtosis ``m4 / m2^2`` (central moments with
    divisor T); NaN for a constant series."""
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= 0:
        return math.nan, math.nan
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def probabilistic_sharpe(returns: np.ndarray, benchmark: float = 0.0) -> float | None:
    """The probability that the true per-session Sharpe ratio of ``returns`` exceeds
    ``benchmark`` (per session): see the module docstring. None below two returns, for a flat
    series, or where the denominator is not positive (extreme skew)."""
    sr = session_sharpe(returns)
    if sr is None:
        return None
    g3, g4 = skew_and_kurtosis(returns)
    variance = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    if not variance > 0:
        return None
    return _NORMAL.cdf((sr - benchmark) * math.sqrt(returns.size - 1) / math.sqrt(variance))


def expected_max_sharpe(candidates: int, sessions: int) -> float:
    """The per-session Sharpe ratio the best of ``candidates`` skill-less models would be
    expected to show over ``sessions`` (0 for a single candidate: nothing to deflate)."""
    if candidates <= 1 or sessions < 2:
        return 0.0
    n = float(candidates)
    quantiles = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1 - 1 / (n * math.e)
    )
    return quantiles / math.sqrt(sessions - 1)


def deflated_sharpe(returns: np.ndarray, candidates: int) -> float | None:
    """The probabilistic Sharpe ratio against the best of ``candidates`` skill-less models."""
    return probabilistic_sharpe(returns, expected_max_sharpe(candidates, returns.size))
