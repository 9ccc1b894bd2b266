"""Run directories: every backtest is saved as ``<runs>/<run-id>/`` and can be reproduced.

A run directory holds ``manifest.json`` (inputs pinned by content hash, every option, library
versions and the sha256 of each output), the result frames as Parquet, ``metrics.json`` and
``report.html``. It is built in ``<runs>/.tmp-<run-id>-<pid>`` and renamed into place, so a
reader never sees half a run and a failed run leaves nothing behind.

The run id is ``<strategy>-<dataset>-<hash8>`` where the hash covers the inputs only (config,
dataset content hash, strategy source hash, quantcli version) - never the clock - so the same
inputs give the same id, and re-running them replaces the run with identical outputs.

Computing libraries (metrics, report, engine, store reader) are imported where they are used:
listing runs reads JSON only and starts fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantcli import __version__
from quantcli.errors import NotFoundError, QuantcliError, UsageError

if TYPE_CHECKING:
    import polars as pl

    from quantcli.backtest.config import BacktestConfig
    from quantcli.backtest.engine import BacktestResult
    from quantcli.backtest.metrics import Metric

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
FRAMES = ("orders", "fills", "equity", "trades")
OUTPUTS = (*(f"{name}.parquet" for name in FRAMES), "metrics.json", "report.html")
SUMMARY_KEYS = ("start", "end", "final_equity", "total_return", "trades")
DEPENDENCIES = ("polars", "numpy", "numba", "pyarrow", "duckdb")
# Fixed writer settings: with the same pyarrow, the same frame always gives the same bytes.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 1 << 20,
    "use_dictionary": True,
    "write_statistics": True,
}


@dataclass(frozen=True)
class Run:
    """A saved run: its id, directory and parsed manifest."""

    run_id: str
    path: Path
    manifest: dict[str, Any]

    def metrics(self) -> dict[str, Any]:
        """The run's ``metrics.json``."""
        return _read_json(self.path / "metrics.json")


@dataclass(frozen=True)
class Reproduction:
    """The outcome of re-running a saved run: which outputs match and which do not."""

    run_id: str
    identical: tuple[str, ...]
    different: tuple[str, ...]
    metric_keys: tuple[str, ...]  # keys of metrics.json whose values differ
    versions_changed: tuple[str, ...] = ()  # "numpy 2.4.6 -> 2.5.0": likely causes of a diff

    @property
    def ok(self) -> bool:
        """True when every output is byte-identical."""
        return not self.different


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuantcliError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise QuantcliError(f"{path}: expected a JSON object")
    return data


def _canonical(payload: object) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_.") or "run"


def strategy_name(spec: str) -> str:
    """Short name of a strategy spec: ``sma_cross`` or the class of ``path.py:Class``."""
    return spec.rsplit(":", 1)[-1] if ":" in spec else Path(spec).stem


def run_id_for(config: Mapping[str, object], dataset_hash: str, strategy_hash: str) -> str:
    """``<strategy>-<dataset>-<hash8>``, the hash over the inputs only (no clock)."""
    digest = hashlib.sha256(
        _canonical(
            {
                "config": config,
                "dataset_hash": dataset_hash,
                "strategy_hash": strategy_hash,
                "quantcli": __version__,
            }
        )
    ).hexdigest()
    dataset = str(config["dataset"]).split("@", 1)[0]
    return f"{_slug(strategy_name(str(config['strategy'])))}-{_slug(dataset)}-{digest[:8]}"


def versions() -> dict[str, str]:
    """Versions of quantcli and the libraries that decide a run's numbers."""
    out = {"quantcli": __version__}
    for name in DEPENDENCIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - all are deps
            out[name] = "missing"
    return out


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Write a frame with fixed settings and no varying metadata (byte-stable output)."""
    import pyarrow.parquet as pq

    pq.write_table(frame.to_arrow(), path, **PARQUET_OPTIONS)


def write_outputs(
    directory: Path, result: BacktestResult, *, run_id: str, config: Mapping[str, object]
) -> tuple[dict[str, str], dict[str, Metric]]:
    """Write every output of ``result`` into ``directory``; returns (name -> sha256, metrics).

    ``config`` is the configuration shown in the report: the one the user ran, so a
    reproduction (which pins the dataset by hash) renders the same page.
    """
    from quantcli.backtest.metrics import metrics_json, metrics_of
    from quantcli.backtest.report import render_report

    for name in FRAMES:
        write_parquet(getattr(result, name), directory / f"{name}.parquet")
    metrics = metrics_of(result)
    (directory / "metrics.json").write_text(metrics_json(metrics), encoding="utf-8")
    page = render_report(
        title=f"{run_id}: {config['strategy']} on {config['dataset']}",
        config=config,
        metrics=metrics,
        equity=result.equity,
        initial_cash=result.config.cash,
        warnings=result.warnings,
    )
    (directory / "report.html").write_text(page, encoding="utf-8")
    return {name: sha256_file(directory / name) for name in OUTPUTS}, metrics


def _dataset_info(ref: str, content_hash: str, root: Path) -> dict[str, object]:
    from quantcli.store.reader import open_dataset

    name = ref.split("@", 1)[0]
    version = open_dataset(f"{name}@{content_hash}", root)
    return {
        "ref": ref,
        "name": version.name,
        "version": version.version,
        "content_hash": content_hash,
    }


def build_manifest(
    result: BacktestResult,
    *,
    run_id: str,
    root: Path,
    outputs: Mapping[str, str],
    metrics: Mapping[str, Metric],
) -> dict[str, object]:
    """The manifest of a run (``created_at`` is informational; reproduce ignores it)."""
    from quantcli.backtest.metrics import fixed_float

    config = result.config
    return {
        "format": FORMAT_VERSION,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.to_dict(),
        "dataset": _dataset_info(config.dataset, result.dataset_hash, root),
        "strategy": {
            "spec": config.strategy,
            "name": strategy_name(config.strategy),
            "source_hash": result.strategy_hash,
            "params": dict(config.params),
        },
        "seed": config.seed,
        "bars": result.bars,
        "warnings": list(result.warnings),
        "versions": versions(),
        "outputs": dict(sorted(outputs.items())),
        "summary": {k: fixed_float(metrics.get(k)) for k in SUMMARY_KEYS},
    }


def save_run(result: BacktestResult, runs_dir: Path, *, root: Path) -> Run:
    """Write ``result`` to ``<runs_dir>/<run-id>/`` atomically and return the saved run."""
    config = result.config.to_dict()
    run_id = run_id_for(config, result.dataset_hash, result.strategy_hash)
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = runs_dir / f".tmp-{run_id}-{os.getpid()}"
    final = runs_dir / run_id
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        outputs, metrics = write_outputs(tmp, result, run_id=run_id, config=config)
        manifest = build_manifest(
            result, run_id=run_id, root=root, outputs=outputs, metrics=metrics
        )
        _write_json_synced(tmp / MANIFEST, manifest)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Run(run_id, final, manifest)


def _write_json_synced(path: Path, payload: object) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, replacing an earlier run of the same id."""
    if not dst.exists():
        src.rename(dst)
        return
    old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
    dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)


def execute(
    config: BacktestConfig,
    *,
    root: Path,
    runs_dir: Path,
    progress: Callable[[float], None] | None = None,
) -> Run:
    """Run a backtest and save it: the library behind ``quantcli backtest``."""
    from quantcli.backtest.engine import run_backtest

    result = run_backtest(config, root=root, progress=progress)
    return save_run(result, runs_dir, root=root)


def find_run(runs_dir: Path, ref: str) -> Run:
    """A run by directory path, id, or unique id prefix within ``runs_dir``."""
    candidate = Path(ref)
    if (candidate / MANIFEST).is_file():
        return _load(candidate)
    if (runs_dir / ref / MANIFEST).is_file():
        return _load(runs_dir / ref)
    matches = [r for r in list_runs(runs_dir) if r.run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"run {ref!r} is ambiguous: {', '.join(r.run_id for r in matches)}")
    raise NotFoundError(f"run {ref!r} not found (looked for {candidate} and in {runs_dir})")


def _load(path: Path) -> Run:
    manifest = _read_json(path / MANIFEST)
    return Run(str(manifest.get("run_id", path.name)), path, manifest)


def list_runs(runs_dir: Path) -> list[Run]:
    """Every saved run under ``runs_dir``, oldest first (temp and broken entries skipped)."""
    if not runs_dir.is_dir():
        return []
    runs = []
    for path in sorted(runs_dir.iterdir()):
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        try:
            runs.append(_load(path))
        except QuantcliError:
            continue
    return sorted(runs, key=lambda r: (str(r.manifest.get("created_at", "")), r.run_id))


def pinned_config(manifest: Mapping[str, Any]) -> BacktestConfig:
    """The run's config with the dataset pinned to the exact version (``NAME@<hash>``)."""
    from quantcli.backtest.config import BacktestConfig

    config = BacktestConfig.from_dict(manifest["config"])
    dataset = manifest["dataset"]
    return dataclasses.replace(config, dataset=f"{dataset['name']}@{dataset['content_hash']}")


def reproduce(
    run_dir: Path, *, root: Path, progress: Callable[[float], None] | None = None
) -> Reproduction:
    """Re-run a saved run from its manifest in a temp dir and compare every output's hash."""
    from quantcli.backtest.engine import run_backtest
    from quantcli.store.reader import open_dataset

    run = _load(run_dir)
    manifest = run.manifest
    config = pinned_config(manifest)
    try:
        open_dataset(config.dataset, root)
    except NotFoundError:
        raise NotFoundError(
            f"run {run.run_id}: dataset version {config.dataset} is not in the store {root}"
        ) from None
    result = run_backtest(config, root=root, progress=progress)
    expected: dict[str, str] = manifest["outputs"]
    with tempfile.TemporaryDirectory(prefix="quantcli-reproduce-") as tmp:
        actual, _ = write_outputs(Path(tmp), result, run_id=run.run_id, config=manifest["config"])
        different = tuple(sorted(n for n in expected if actual.get(n) != expected[n]))
        keys: tuple[str, ...] = ()
        if "metrics.json" in different:
            keys = _differing_keys(run.metrics(), _read_json(Path(tmp) / "metrics.json"))
    identical = tuple(sorted(n for n in expected if n not in different))
    recorded: dict[str, str] = manifest.get("versions", {})
    now = versions()
    changed = tuple(
        f"{name} {recorded.get(name, '?')} -> {now[name]}"
        for name in sorted(now)
        if recorded.get(name) != now[name]
    )
    return Reproduction(run.run_id, identical, different, keys, changed)


def _differing_keys(a: Mapping[str, object], b: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))
