"""Walk-forward folds over session dates, purged and embargoed by the label horizon.

Sessions are counted, not rows: a row's label at session ``i`` looks at sessions ``i+1 ..
i+H``, so a training row at ``i`` leaks into a test block starting at ``a`` when ``i + H >= a``.
Each fold trains only on sessions before its test block (walk-forward, expanding), without
the ``H`` sessions right before the block (the purge) and without the ``embargo`` sessions
right after any earlier test block, whose features were computed over windows that reach
into that block. scikit-learn's ``TimeSeriesSplit(gap=)`` purges by a row count and has no
embargo, hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from quantcli.errors import DataError, UsageError


@dataclass(frozen=True)
class Fold:
    """One fold: training and test sessions as indices into the session list."""

    number: int
    train: tuple[int, ...]
    test_start: int
    test_end: int  # inclusive

    @property
    def test(self) -> range:
        """The test block's session indices."""
        return range(self.test_start, self.test_end + 1)


def walk_forward(
    sessions: int, first_test: int, folds: int, horizon: int, embargo: int
) -> list[Fold]:
    """``folds`` walk-forward folds over session indices ``0 .. sessions-1``.

    The test blocks split ``first_test .. sessions-1`` into ``folds`` contiguous blocks of
    near-equal size; sessions before ``first_test`` only ever train. DataError when a block
    would be empty or a fold has nothing left to train on.
    """
    if folds < 1:
        raise UsageError(f"--folds must be at least 1, got {folds}")
    if horizon < 1 or embargo < 0:
        raise UsageError(f"horizon must be >= 1 and embargo >= 0, got {horizon} and {embargo}")
    span = sessions - first_test
    if span < folds:
        raise DataError(
            f"{span} test session(s) cannot make {folds} folds; give fewer --folds "
            "or a longer window"
        )
    bounds = [first_test + span * k // folds for k in range(folds + 1)]
    out: list[Fold] = []
    embargoed: set[int] = set()
    for k in range(folds):
        start, end = bounds[k], bounds[k + 1] - 1
        train = tuple(i for i in range(max(0, start - horizon)) if i not in embargoed)
        if not train:
            raise DataError(
                f"fold {k + 1} has no training sessions once the {horizon}-session purge is "
                "applied; start --train-from earlier or give fewer --folds"
            )
        out.append(Fold(k + 1, train, start, end))
        embargoed.update(range(end + 1, min(sessions, end + 1 + embargo)))
    return out


def final_train(sessions_in_window: int, horizon: int) -> range:
    """Sessions the registered model is fitted on: the training window without its last
    ``horizon`` sessions, whose labels look past the window's end."""
    return range(max(0, sessions_in_window - horizon))
