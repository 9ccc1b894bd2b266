"""Saved sweeps: ``<root>/sweeps/<sweep-id>/v1/`` holding ``results.parquet`` (one row per
combination: K, the parameters, every metric, the output hashes) and ``manifest.json`` (the
dataset, strategy, grid, options, every input's sha256, library versions, the results' sha256).

A sweep is published by the store's own machinery (quantcli.store.publish.publish_files: a temp
directory renamed into place under the lock, the manifest written last), so a reader never sees
half a sweep and a failed one leaves nothing. The sweep id is ``<strategy>-<dataset>-<hash12>``
over the inputs, never the clock (quantcli.backtest.runs.run_id_for): the same sweep again
finds its version and writes nothing. Every read checks the results' sha256 first.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from quantcli.backtest.config import BacktestConfig
from quantcli.core.hashing import sha256_hex
from quantcli.errors import ConflictError, IntegrityError, NotFoundError, UsageError
from quantcli.sweep.grid import Grid, combo_params
from quantcli.sweep.runner import Cluster, run_grid

SWEEPS_DIR = "sweeps"
MANIFEST = "manifest.json"
RESULTS = "results.parquet"
FORMAT_VERSION = 1
# Metrics where less is better: the top of a sweep by them is its lowest values.
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration", "volatility"})
CLUSTER_LIBRARIES = ("dask", "distributed")


@dataclass(frozen=True)
class Sweep:
    """A saved sweep: its id, directory, manifest and results."""

    sweep_id: str
    path: Path
    manifest: Mapping[str, Any]
    results: pl.DataFrame
    unchanged: bool = False  # the same sweep was already saved

    @property
    def params(self) -> list[str]:
        """The grid's parameter names."""
        return list(self.manifest["grid"]["params"])

    def config(self, k: int, root: Path) -> BacktestConfig:
        """The plain backtest of combination ``k``: the sweep's options with its parameters,
        on the dataset version the sweep read (its reference, or that version pinned by hash
        when the reference has moved since)."""
        from quantcli.store.reader import open_dataset

        if not 0 <= k < self.results.height:
            raise UsageError(
                f"--combo {k}: sweep {self.sweep_id} has combinations 0..{self.results.height - 1}"
            )
        row = self.results.row(k, named=True)
        config = BacktestConfig.from_dict(self.manifest["config"])
        params = {**config.params, **combo_params({p: row[p] for p in self.params})}
        digest = self.manifest["dataset"]["content_hash"]
        dataset = config.dataset
        if open_dataset(dataset, root).manifest.content_hash != digest:
            dataset = f"{dataset.split('@', 1)[0]}@{digest}"
        return dataclasses.replace(config, params=params, dataset=dataset)


def sweeps_root(root: Path) -> Path:
    """Where a store keeps its sweeps."""
    return root / SWEEPS_DIR


def execute_sweep(
    config: BacktestConfig,
    grid: Grid,
    *,
    root: Path,
    cluster: Cluster | None,
    progress: Callable[[int], None] | None = None,
) -> Sweep:
    """Run ``grid`` over ``config``'s dataset and options and save it: the library behind
    ``quantcli backtest sweep``. Nothing is written unless every combination ran."""
    from quantcli.backtest.engine import read_inputs

    inputs = read_inputs(config, root)
    frame = run_grid(
        inputs, config.strategy, grid, config, cluster=cluster, progress=progress, root=root
    )
    manifest = _manifest(config, grid, inputs, root)
    return save_sweep(frame, manifest, root=root)


def _manifest(config: BacktestConfig, grid: Grid, inputs: Any, root: Path) -> dict[str, Any]:
    from quantcli.backtest.engine import simulate
    from quantcli.backtest.runs import dataset_info, run_id_for, run_inputs, versions
    from quantcli.market.calendar import using_store

    # One run of the first combination gives every input the sweep shares (calendar, charge
    # rates, corporate actions, strategy source): the grid replaces its parameters.
    first = dataclasses.replace(config, params={**config.params, **combo_params(grid.combos[0])})
    with using_store(root):
        result = simulate(
            inputs.bars, first, actions=inputs.actions, dataset_hash=inputs.dataset_hash, root=root
        )
    recorded = config.to_dict()
    entries = run_inputs(result, config=recorded, root=root)
    entries["params"] = {"sha256": sha256_hex(_canonical(grid.to_dict())), "grid": True}
    sweep_id = run_id_for(recorded, entries)
    libraries = versions()
    for name in CLUSTER_LIBRARIES:
        libraries[name] = importlib.metadata.version(name)
    return {
        "format": FORMAT_VERSION,
        "sweep_id": sweep_id,
        "config": recorded,
        "dataset": dataset_info(config.dataset, inputs.dataset_hash, root),
        "strategy": {"spec": config.strategy, "source_hash": result.strategy_hash},
        "grid": grid.to_dict(),
        "inputs": entries,
        "versions": libraries,
        "warnings": [w for w in (inputs.unapplied,) if w is not None],
    }


def _canonical(payload: object) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def results_bytes(frame: pl.DataFrame) -> bytes:
    """The Parquet bytes of a results frame (the runs' fixed writer settings: byte-stable)."""
    import pyarrow.parquet as pq

    from quantcli.backtest.runs import PARQUET_OPTIONS

    buffer = io.BytesIO()
    pq.write_table(frame.to_arrow(), buffer, **PARQUET_OPTIONS)
    return buffer.getvalue()


def save_sweep(frame: pl.DataFrame, manifest: Mapping[str, Any], *, root: Path) -> Sweep:
    """Publish ``frame`` with ``manifest`` as ``sweeps/<sweep_id>/v1``; when that sweep exists
    with the same results it is kept (``unchanged``), with other results ConflictError."""
    from quantcli.output import to_json
    from quantcli.store.manifest import version_dir
    from quantcli.store.publish import publish_files

    data = results_bytes(frame)
    digest = sha256_hex(data)
    full = {**manifest, "files": {RESULTS: digest}}
    sweep_id = str(full["sweep_id"])

    def files(_: int) -> dict[str, bytes]:
        return {RESULTS: data, MANIFEST: (to_json(full) + "\n").encode("utf-8")}

    def existing(folder: Path) -> bool:
        theirs = _read_manifest(folder).get("files", {}).get(RESULTS)
        if theirs != digest:
            raise ConflictError(
                f"sweep {sweep_id} is saved in {folder} with other results: not replacing it "
                "(move it away to run it again)"
            )
        return True

    version, created = publish_files(
        sweeps_root(root), sweep_id, files, marker=MANIFEST, existing=existing, what="sweep"
    )
    path = version_dir(sweeps_root(root), sweep_id, version)
    return Sweep(sweep_id, path, full if created else _read_manifest(path), frame, not created)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc["files"][RESULTS], str):
            raise ValueError("not a sweep manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path}: unreadable sweep manifest: {exc}") from None
    return doc


def find_sweep(root: Path, ref: str) -> Sweep:
    """A saved sweep by id or unique id prefix, its results checked against the manifest's
    sha256 (IntegrityError naming the file when they differ)."""
    from quantcli.store.manifest import version_dir, version_numbers
    from quantcli.store.verify import compare_files

    folder = sweeps_root(root)
    names = (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if folder.is_dir()
        else []
    )
    matches = [n for n in names if n == ref] or [n for n in names if n.startswith(ref)]
    if len(matches) > 1:
        raise UsageError(f"sweep {ref!r} is ambiguous: {', '.join(matches)}")
    versions = version_numbers(folder, matches[0], MANIFEST) if matches else []
    if not versions:
        raise NotFoundError(f"sweep {ref!r} not found in {folder} (use --root for another store)")
    path = version_dir(folder, matches[0], versions[-1])
    manifest = _read_manifest(path)
    missing, _, changed = compare_files(path, manifest["files"], MANIFEST)
    if missing or changed:
        bad = (missing or changed)[0]
        what = "missing" if missing else "changed since the sweep was saved"
        raise IntegrityError(f"{path / bad}: {what}; the sweep's results cannot be trusted")
    return Sweep(matches[0], path, manifest, pl.read_parquet(path / RESULTS))


def metric_names() -> list[str]:
    """The numeric metrics a sweep can be ranked by (every run's, charges included)."""
    from quantcli.backtest.report import METRIC_ROWS
    from quantcli.market.charges import CHARGE_COMPONENTS

    names = [key for key, _, kind in METRIC_ROWS if kind != "text"]
    return [*names, *(f"charges_{name}" for name in (*CHARGE_COMPONENTS, "total"))]


def check_metric(metric: str) -> str:
    """``metric`` if a sweep can be ranked by it, else UsageError naming those it can."""
    names = metric_names()
    if metric not in names:
        raise UsageError(f"--metric {metric!r}: not a metric (one of: {', '.join(names)})")
    return metric


def ranked(results: pl.DataFrame, metric: str) -> pl.DataFrame:
    """``results`` best first by ``metric`` (lowest first for LOWER_IS_BETTER; missing values
    last; ties by K)."""
    check_metric(metric)
    descending = metric not in LOWER_IS_BETTER
    return results.sort([metric, "K"], descending=[descending, False], nulls_last=True)
