"""Out-of-sample metrics of scores against labels, from scikit-learn and scipy.

Classifiers: AUC, log loss, accuracy (score > 0.5), Brier score; regressors: MAE and RMSE;
both: the information coefficient, the Spearman correlation of score and forward return within
each date (a cross-section), summarised by its mean and t-statistic over dates. A metric that is
undefined on the rows given (AUC with one class, IC with fewer than two dates) is None.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from quantcli.models.kinds import CLASSIFIER

# A score is a probability in log loss; clipping keeps a baseline's 0/1 scores finite.
EPS = 1e-15


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _ranks_within(starts: np.ndarray, group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` within each group (ties get their mean rank, as
    scipy.stats.rankdata's "average"); rows are in group order, ``starts`` each group's first."""
    order = np.lexsort((values, group))
    v, g = values[order], group[order]
    # Runs of equal values within a group share the mean of their positions.
    new_run = np.r_[True, (v[1:] != v[:-1]) | (g[1:] != g[:-1])]
    run = np.cumsum(new_run) - 1
    first = np.flatnonzero(new_run)
    last = np.r_[first[1:], len(v)] - 1
    position = np.arange(len(v)) - starts[g]
    base = position[first][run]
    mean = (base + position[last][run]) / 2 + 1
    ranks = np.empty(len(v))
    ranks[order] = mean
    return ranks


def daily_ic(dates: np.ndarray, score: np.ndarray, forward_return: np.ndarray) -> np.ndarray:
    """The Spearman IC of each distinct date of ``dates``, in ascending date order; NaN for a
    date with fewer than two rows, or a constant score or return (it has no IC).

    The same bits as ``scipy.stats.spearmanr`` per date, which ranks and then takes
    ``np.corrcoef`` of the (rows x 2) ranks: the ranks are found for every date at once (they
    are exact half-integers, however computed) and only ``np.corrcoef`` runs per date, at a
    fraction of spearmanr's per-call cost.
    """
    if not len(dates):
        return np.empty(0)
    order = np.argsort(dates, kind="stable")
    d, s, r = dates[order], score[order], forward_return[order]
    cuts = np.flatnonzero(d[1:] != d[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(d)]
    group = np.repeat(np.arange(len(starts)), ends - starts)
    rank_s, rank_r = _ranks_within(starts, group, s), _ranks_within(starts, group, r)
    out = np.full(len(starts), np.nan)
    for i, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        if hi - lo < 2 or np.ptp(s[lo:hi]) == 0 or np.ptp(r[lo:hi]) == 0:
            continue
        ranked = np.column_stack((rank_s[lo:hi], rank_r[lo:hi]))
        out[i] = float(np.corrcoef(ranked, rowvar=False)[1, 0])
    return out


def information_coefficient(
    dates: np.ndarray,
    score: np.ndarray,
    forward_return: np.ndarray,
    *,
    by_date: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """Mean and t-statistic of the per-date Spearman IC, and the number of dates it covers.

    A date with fewer than two rows, or a constant score or return, has no IC and is skipped.
    ``by_date`` is :func:`daily_ic` of the same arrays, when the caller has it already.
    """
    values = daily_ic(dates, score, forward_return) if by_date is None else by_date
    values = values[~np.isnan(values)]
    if not len(values):
        return {"ic_mean": None, "ic_tstat": None, "ic_dates": 0}
    mean = float(values.mean())
    tstat = None
    if len(values) > 1 and values.std(ddof=1) > 0:
        tstat = mean / (float(values.std(ddof=1)) / math.sqrt(len(values)))
    return {"ic_mean": _finite(mean), "ic_tstat": tstat, "ic_dates": len(values)}


def evaluate(
    task: str,
    label: np.ndarray,
    score: np.ndarray,
    dates: np.ndarray,
    forward_return: np.ndarray,
    *,
    ic_by_date: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """The metrics of ``score`` against ``label`` (and ``forward_return`` for the IC;
    ``ic_by_date`` is its :func:`daily_ic`, when the caller has it already)."""
    from sklearn import metrics

    out: dict[str, float | int | None] = {"rows": len(label)}
    if task == CLASSIFIER:
        y = label.astype(np.int64)
        both = len(np.unique(y)) == 2
        out["auc"] = float(metrics.roc_auc_score(y, score)) if both else None
        out["log_loss"] = float(metrics.log_loss(y, np.clip(score, EPS, 1 - EPS), labels=[0, 1]))
        out["accuracy"] = float(metrics.accuracy_score(y, (score > 0.5).astype(np.int64)))
        out["brier"] = float(metrics.brier_score_loss(y, score, pos_label=1))
    else:
        out["mae"] = float(metrics.mean_absolute_error(label, score))
        out["rmse"] = float(metrics.root_mean_squared_error(label, score))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant inputs are skipped above; nothing else warns
        out.update(information_coefficient(dates, score, forward_return, by_date=ic_by_date))
    return out
