"""Where the workers of a sweep read its bars: scattered by the client with the job, or, with
``--remote NAME`` (``[cluster] remote``), straight from a pinned version on a dataset remote.

A :class:`RemoteInputs` stands for the run's inputs in the job the client sends: the version
pinned by its content hash, the remote's name and URL (never its endpoint or credentials: each
worker takes those from its own environment or quantcli.toml, see quantcli.store.remotes), the
bars' selection, and what the client decided from its own store (the corporate actions it
applies, the dataset's hash). Each worker process reads the bars once: ``open_remote`` pulls
the version into the worker's $QUANTCLI_CACHE_DIR, every hash checked, and its combinations
replay them. The bytes are those the client read, so the results are too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from quantcli.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    import polars as pl

    from quantcli.backtest.config import BacktestConfig
    from quantcli.backtest.engine import RunInputs
    from quantcli.market.corporate_actions import CorporateAction
    from quantcli.store.remotes import Remote

# Versions a worker keeps read (a sweep reads one).
KEPT = 2


@dataclass(frozen=True)
class RemoteInputs:
    """A run's inputs as a worker reads them from ``remote``: ``bars`` are dataset version
    ``ref`` (``NAME@<content hash>``) for ``symbols`` from ``start`` to ``end``."""

    ref: str
    remote: Remote
    symbols: tuple[str, ...] | None
    start: date | None
    end: date | None
    actions: tuple[CorporateAction, ...]
    dataset_hash: str
    unapplied: str | None

    @property
    def bars(self) -> pl.DataFrame:
        """The bars, read from the remote once per process."""
        return _bars(self.ref, self.remote, self.symbols, self.start, self.end)


@functools.lru_cache(maxsize=KEPT)
def _bars(
    ref: str,
    remote: Remote,
    symbols: tuple[str, ...] | None,
    start: date | None,
    end: date | None,
) -> pl.DataFrame:
    from quantcli.store.remotes import open_remote

    return open_remote(ref, remote).frame(symbols=symbols, start=start, end=end)


def remote_inputs(
    inputs: RunInputs | RemoteInputs, config: BacktestConfig, root: str | None, name: str
) -> RemoteInputs:
    """What the workers get instead of ``inputs`` (read by the client for ``config`` from the
    store at ``root``) when they read from remote ``name``: checked to be on that remote first,
    so a version never pushed is one line before any worker starts."""
    from quantcli.store.remotes import get_remote, remote_manifest

    if root is None or not inputs.dataset_hash:
        raise UsageError(
            f"--remote {name}: workers read a store's dataset version from a remote; sweep a "
            "store dataset (run_grid(..., root=...))"
        )
    remote = get_remote(Path(root), name)
    dataset = config.dataset.partition("@")[0]
    ref = f"{dataset}@{inputs.dataset_hash}"
    try:
        remote_manifest(remote, ref)
    except NotFoundError:
        raise NotFoundError(
            f"--remote {remote.name}: the sweep's dataset version {dataset}@"
            f"{inputs.dataset_hash[:12]} is not on {remote.url}; `quantcli data push "
            f"{dataset}@{inputs.dataset_hash[:12]} --remote {remote.name}` first"
        ) from None
    return RemoteInputs(
        ref,
        remote,
        config.symbols,
        config.start,
        config.end,
        inputs.actions,
        inputs.dataset_hash,
        inputs.unapplied,
    )
