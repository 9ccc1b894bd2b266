"""Run directories: every backtest is saved as ``<runs>/<run-id>/`` and can be reproduced.

A run directory holds ``manifest.json`` (every input that decides the numbers, each by its
sha256 under ``inputs``; every option; library versions; the sha256 of each output), the result
frames as Parquet, ``metrics.json``, ``report.html`` and copies of the user files the run read
(``strategy.py``, ``broker.toml``), so a reproduction needs neither their original paths nor the
directory the run was started from. It is built in ``<runs>/.tmp-<run-id>-<pid>`` and renamed
into place, so a reader never sees half a run and a failed run leaves nothing behind.

The run id is ``<strategy>-<dataset>-<hash12>`` where the hash covers the inputs only - never
the clock - so the same inputs give the same id. A run directory is never overwritten: saving
a run whose directory exists keeps it when the new bytes are identical and is refused
otherwise.

Computing libraries (metrics, report, engine, store reader) are imported where they are used:
listing runs reads JSON only and starts fast.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantcli import __version__
from quantcli.backtest.config import BacktestConfig
from quantcli.core.files import fsync_dir, fsync_file, write_new
from quantcli.core.hashing import sha256_file, sha256_hex
from quantcli.core.timezone import ist_datetime
from quantcli.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    QuantcliError,
    StrategyError,
    UsageError,
)

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from quantcli.backtest.engine import BacktestResult
    from quantcli.backtest.metrics import Metric
    from quantcli.store.remotes import Remote

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # of the run manifest written
FORMATS = (1, 2)  # those read
FRAMES = ("orders", "fills", "equity", "trades")
OUTPUTS = (*(f"{name}.parquet" for name in FRAMES), "metrics.json", "report.html")
SUMMARY_KEYS = ("start", "end", "final_equity", "total_return", "trades")
DEPENDENCIES = ("polars", "numpy", "numba", "pyarrow", "duckdb", "exchange-calendars")
# Where a run keeps its copy of a user strategy file and a user broker profile.
STRATEGY_COPY = "strategy.py"
BROKER_COPY = "broker.toml"
# The inputs a run's identity covers (manifest ``inputs``), as ``reproduce`` names a changed
# one, in the order it reports them; a strategy's setup adds its own (the model strategy's
# ``model``), named by their keys.
INPUTS = {
    "strategy": "strategy source",
    "params": "parameters",
    "options": "options",
    "dataset": "dataset",
    "corporate_actions": "corporate actions",
    "calendar": "calendar",
    "charge_rates": "charge rates",
    "broker": "broker profile",
    "versions": "library versions",
}
# Fixed writer settings: with the same pyarrow, the same frame always gives the same bytes.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "row_group_size": 1 << 20,
    "use_dictionary": True,
    "write_statistics": True,
}


def _damaged(detail: str) -> IntegrityError:
    return IntegrityError(f"damaged run manifest: {detail}")


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    """``data[key]`` when it is a ``kind``, else the damaged-manifest error naming the key."""
    if key not in data:
        raise _damaged(f"no {key!r}")
    value = data[key]
    # bool is an int in Python, never a count or a version here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _damaged(f"{key!r} is {type(value).__name__}, not {kind.__name__}")
    return value


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    section: dict[str, Any] = _typed(data, key, dict)
    return section


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset version a run read: the reference given, and the version it resolved to."""

    ref: str
    name: str
    version: int
    content_hash: str
    prices: str | None = None  # recorded only when not raw

    def to_dict(self) -> dict[str, object]:
        """The manifest's ``dataset`` object."""
        out: dict[str, object] = {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
        }
        if self.prices is not None:
            out["prices"] = self.prices
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetInfo:
        """Inverse of :meth:`to_dict` (IntegrityError when a field is missing or mistyped)."""
        prices = d.get("prices")
        if prices is not None and not isinstance(prices, str):
            raise _damaged("'prices' is not a string")
        return cls(
            _typed(d, "ref", str),
            _typed(d, "name", str),
            _typed(d, "version", int),
            _typed(d, "content_hash", str),
            prices,
        )


@dataclass(frozen=True)
class StrategyInfo:
    """The strategy a run executed: its spec, short name, source sha256 and parameters."""

    spec: str
    name: str
    source_hash: str
    params: Mapping[str, str]

    def to_dict(self) -> dict[str, object]:
        """The manifest's ``strategy`` object."""
        return {
            "spec": self.spec,
            "name": self.name,
            "source_hash": self.source_hash,
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyInfo:
        """Inverse of :meth:`to_dict` (IntegrityError when a field is missing or mistyped)."""
        params = _section(d, "params")
        return cls(
            _typed(d, "spec", str),
            _typed(d, "name", str),
            _typed(d, "source_hash", str),
            {str(k): str(v) for k, v in params.items()},
        )


@dataclass(frozen=True)
class RunManifest:
    """The immutable description of one saved run (``manifest.json``): what it ran, every input
    that decides its numbers (``inputs``, each with its sha256) and the sha256 of each output.

    ``format`` 2 is written; format 1 (before ``inputs`` existed) is still read, its inputs
    being the strategy source and the dataset it pinned. ``created_at`` is informational:
    reproduce and the run id ignore it.
    """

    run_id: str
    created_at: str
    config: BacktestConfig
    dataset: DatasetInfo
    strategy: StrategyInfo
    seed: int
    bars: int
    versions: Mapping[str, str]
    outputs: Mapping[str, str]
    summary: Mapping[str, object]
    inputs: Mapping[str, Mapping[str, object]]
    warnings: tuple[str, ...] = ()
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to ``manifest.json``."""
        return {
            "format": self.format,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "config": self.config.to_dict(),
            "dataset": self.dataset.to_dict(),
            "strategy": self.strategy.to_dict(),
            "seed": self.seed,
            "bars": self.bars,
            "warnings": list(self.warnings),
            "versions": dict(self.versions),
            "outputs": dict(sorted(self.outputs.items())),
            "summary": dict(self.summary),
            "inputs": {name: dict(entry) for name, entry in self.inputs.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunManifest:
        """Inverse of :meth:`to_dict`: IntegrityError (one line, naming the field) for a
        damaged manifest or a format this quantcli does not read."""
        fmt = _typed(d, "format", int)
        if fmt not in FORMATS:
            raise IntegrityError(
                f"run manifest format {fmt} is not one this quantcli reads "
                f"({', '.join(map(str, FORMATS))}): upgrade quantcli"
            )
        try:
            config = BacktestConfig.from_dict(_section(d, "config"))
        except (QuantcliError, TypeError, ValueError) as exc:
            raise _damaged(f"'config': {exc}") from None
        dataset = DatasetInfo.from_dict(_section(d, "dataset"))
        strategy = StrategyInfo.from_dict(_section(d, "strategy"))
        if fmt == 1:
            # A format-1 manifest pins only the dataset and the strategy source.
            inputs: dict[str, Any] = {
                "strategy": {"sha256": strategy.source_hash},
                "dataset": {"sha256": dataset.content_hash},
            }
        else:
            inputs = _section(d, "inputs")
        if any(not isinstance(entry, dict) or "sha256" not in entry for entry in inputs.values()):
            raise _damaged("an 'inputs' entry has no sha256")
        warnings = d.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise _damaged("'warnings' is not a list of strings")
        return cls(
            run_id=_typed(d, "run_id", str),
            created_at=str(d.get("created_at", "")),
            config=config,
            dataset=dataset,
            strategy=strategy,
            seed=_typed(d, "seed", int),
            bars=_typed(d, "bars", int),
            versions={str(k): str(v) for k, v in _section(d, "versions").items()},
            outputs={str(k): str(v) for k, v in _section(d, "outputs").items()},
            summary=_section(d, "summary"),
            inputs=inputs,
            warnings=tuple(warnings),
            format=fmt,
        )


@dataclass(frozen=True)
class Run:
    """A saved run: its id, directory and parsed manifest."""

    run_id: str
    path: Path
    manifest: RunManifest
    unchanged: bool = False  # saving found this run already there, byte-identical

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
    inputs_changed: tuple[str, ...] = ()  # INPUTS labels whose sha256 no longer matches

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


def _digest(payload: object) -> str:
    return sha256_hex(_canonical(payload))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", text).strip("_.") or "run"


def strategy_name(spec: str) -> str:
    """Short name of a strategy spec: ``sma_cross`` or the class of ``path.py:Class``."""
    return spec.rsplit(":", 1)[-1] if ":" in spec else Path(spec).stem


def run_id_for(config: Mapping[str, object], inputs: Mapping[str, Mapping[str, object]]) -> str:
    """``<strategy>-<dataset>-<hash12>``, the hash over every input's sha256 (no clock)."""
    digest = _digest({name: entry["sha256"] for name, entry in inputs.items()})
    dataset = str(config["dataset"]).split("@", 1)[0]
    return f"{_slug(strategy_name(str(config['strategy'])))}-{_slug(dataset)}-{digest[:12]}"


def versions() -> dict[str, str]:
    """Versions of quantcli, python and the libraries that decide a run's numbers."""
    out = {"quantcli": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - all are deps
            out[name] = "missing"
    return out


def run_inputs(
    result: BacktestResult, *, config: Mapping[str, object], root: Path
) -> dict[str, dict[str, object]]:
    """Every input that decides ``result``'s numbers, each as ``{"sha256": ..., what it was}``.

    ``config`` is the configuration the user ran (a reproduction runs a pinned copy of it); the
    files actually read (strategy, broker profile) are those of ``result.config``.
    """
    days = _run_days(result.ts)
    own: dict[str, dict[str, object]] = {
        "strategy": {"sha256": result.strategy_hash, "spec": config["strategy"]},
        "params": {"sha256": _digest(config["params"])},
        "options": {"sha256": _digest({k: v for k, v in config.items() if k != "params"})},
        "dataset": {"sha256": result.dataset_hash},
        "corporate_actions": _actions_input(result, days, root),
        "calendar": {"sha256": _calendar_fingerprint(root)},
        **charges_inputs(result.config, days),
        "versions": {"sha256": _digest(versions())},
    }
    clash = sorted(set(result.inputs) & set(own))
    if clash:
        raise StrategyError(
            f"strategy {config['strategy']}: its setup() input {clash[0]!r} is one the run "
            "records itself; name it otherwise"
        )
    return {**own, **{name: dict(entry) for name, entry in result.inputs.items()}}


def _calendar_fingerprint(root: Path) -> str:
    # The calendar the run used: the bundled one plus store ``root``'s imported years, also
    # when called from Python outside the CLI's store context.
    from quantcli.market.calendar import fingerprint, using_store

    with using_store(root):
        return fingerprint()


def _run_days(ts: np.ndarray) -> tuple[date, date] | None:
    """The first and last session date (IST) of the replayed bars."""
    if len(ts) == 0:
        return None
    return ist_datetime(ts.min()).date(), ist_datetime(ts.max()).date()


def _actions_input(
    result: BacktestResult, days: tuple[date, date] | None, root: Path
) -> dict[str, object]:
    # Every action on record for the run's symbols up to its last day: one dated before the
    # first bar is still counted, as adjusted prices may scale by it. On vendor-adjusted prices
    # the run applied only some of them (partition_actions): the entry says which and why, and
    # its hash covers the prices' kind and the actions on record (they decide the warning).
    from quantcli.market.corporate_actions import actions_for
    from quantcli.store.manifest import RAW, describe_prices, partition_actions

    last = days[1] if days is not None else date.min
    on_record = [a for a in actions_for(result.symbols, root) if a.ex_date <= last]
    actions = [a.to_dict() for a in on_record]
    prices = str(dataset_info(result.config.dataset, result.dataset_hash, root).get("prices", RAW))
    if prices == RAW:
        return {"sha256": _digest(actions), "count": len(actions)}
    applied, adjusted = partition_actions(on_record, prices)
    kinds = sorted({a.kind for a in adjusted})
    return {
        "sha256": _digest({"prices": prices, "actions": actions}),
        "count": len(actions),
        "applied": len(applied),
        "prices": prices,
        "not_applied": (
            f"{len(adjusted)} ({', '.join(kinds) or 'none on record'}): the dataset's prices "
            f"are {describe_prices(prices)}"
        ),
    }


def charges_inputs(config: BacktestConfig, days: tuple[date, date] | None) -> dict[str, Any]:
    """The manifest's entries for the cost model's dated rates over ``days`` and the broker
    profile it read (its name and parameter are in the options); sweeps record them too."""
    from quantcli.backtest.costs import parse_costs
    from quantcli.market.charges import load_profile, profile_source

    model = parse_costs(config.costs)
    unused = {"sha256": _digest(None), "used": False}
    periods = None if days is None else model.schedule(config.segment, config.broker, *days)
    entries: dict[str, Any] = {"charge_rates": unused, "broker": dict(unused)}
    if periods is not None:
        entries["charge_rates"] = {
            "sha256": _digest([(start.isoformat(), list(rates)) for start, rates in periods]),
            "periods": len(periods),
        }
    if model.uses_broker and days is not None:
        entries["broker"] = {
            "sha256": sha256_hex(profile_source(config.broker)),
            "name": load_profile(config.broker).name,
        }
    return entries


def _user_files(config: BacktestConfig, strategy_hash: str) -> dict[str, bytes]:
    """The user files ``config`` read, by their name in the run directory."""
    from quantcli.backtest.costs import parse_costs
    from quantcli.backtest.strategy import BUILTINS
    from quantcli.market.charges import bundled_profiles, profile_source

    files: dict[str, bytes] = {}
    if config.strategy not in BUILTINS:
        path = Path(config.strategy.rpartition(":")[0])
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise NotFoundError(f"strategy file {path}: {exc.strerror}") from None
        if sha256_hex(source) != strategy_hash:
            raise ConflictError(f"strategy file {path} changed while the backtest ran: run again")
        files[STRATEGY_COPY] = source
    if parse_costs(config.costs).uses_broker and config.broker not in bundled_profiles():
        files[BROKER_COPY] = profile_source(config.broker)
    return files


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


def dataset_info(ref: str, content_hash: str, root: Path) -> dict[str, object]:
    """The manifest's ``dataset`` object (DatasetInfo's JSON form) of ``ref`` at
    ``content_hash``: runs, sweeps and walk-forwards record the same."""
    from quantcli.store.manifest import RAW
    from quantcli.store.reader import open_dataset

    name = ref.split("@", 1)[0]
    version = open_dataset(f"{name}@{content_hash}", root)
    info: dict[str, object] = {
        "ref": ref,
        "name": version.name,
        "version": version.version,
        "content_hash": content_hash,
    }
    if version.manifest.prices != RAW:  # raw runs' manifests keep their bytes
        info["prices"] = version.manifest.prices
    return info


def build_manifest(
    result: BacktestResult,
    *,
    run_id: str,
    root: Path,
    outputs: Mapping[str, str],
    metrics: Mapping[str, Metric],
    inputs: Mapping[str, Mapping[str, object]],
) -> RunManifest:
    """The manifest of a run (``created_at`` is informational; reproduce ignores it)."""
    from quantcli.backtest.metrics import fixed_float

    config = result.config
    return RunManifest(
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        config=config,
        dataset=DatasetInfo.from_dict(dataset_info(config.dataset, result.dataset_hash, root)),
        strategy=StrategyInfo(
            config.strategy, strategy_name(config.strategy), result.strategy_hash, config.params
        ),
        seed=config.seed,
        bars=result.bars,
        versions=versions(),
        outputs=outputs,
        summary={k: fixed_float(metrics.get(k)) for k in SUMMARY_KEYS},
        inputs=inputs,
        warnings=tuple(result.warnings),
    )


def save_run(result: BacktestResult, runs_dir: Path, *, root: Path) -> Run:
    """Write ``result`` to ``<runs_dir>/<run-id>/`` atomically and return the saved run.

    When that directory exists already it is left as it is: the returned run is marked
    ``unchanged`` if its bytes equal the new ones, and ConflictError names the differing files
    otherwise (an existing run is never replaced).
    """
    config = result.config.to_dict()
    files = _user_files(result.config, result.strategy_hash)
    inputs = run_inputs(result, config=config, root=root)
    for name, key in ((STRATEGY_COPY, "strategy"), (BROKER_COPY, "broker")):
        if name in files:
            inputs[key]["file"] = name
    run_id = run_id_for(config, inputs)
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = runs_dir / f".tmp-{run_id}-{os.getpid()}"
    final = runs_dir / run_id
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        outputs, metrics = write_outputs(tmp, result, run_id=run_id, config=config)
        for name in OUTPUTS:
            fsync_file(tmp / name)
        for name, data in files.items():
            write_new(tmp / name, data)
        manifest = build_manifest(
            result, run_id=run_id, root=root, outputs=outputs, metrics=metrics, inputs=inputs
        )
        _write_json_synced(tmp / MANIFEST, manifest.to_dict())
        if _place(tmp, final):
            return Run(run_id, final, manifest)
        different = _differing_files(tmp, final)
        if different:
            raise ConflictError(
                f"run {run_id} already exists in {final} with different "
                f"{', '.join(different)}: not overwriting it (move it away, or use another "
                "--runs-dir)"
            )
        return dataclasses.replace(_load(final), unchanged=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json_synced(path: Path, payload: object) -> None:
    write_new(path, (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode())


def _place(src: Path, dst: Path) -> bool:
    """Rename the complete (fsynced) directory ``src`` to ``dst`` unless ``dst`` exists, and
    make the rename durable; False when it exists (renaming onto a non-empty directory fails,
    so a run saved concurrently is never replaced either)."""
    if dst.exists():
        return False
    fsync_dir(src)
    try:
        src.rename(dst)
    except OSError:
        if dst.exists():
            return False
        raise
    fsync_dir(dst.parent)
    return True


def _differing_files(new: Path, old: Path) -> list[str]:
    """Names of the files whose bytes differ between two run directories (a manifest compared
    without its informational ``created_at``)."""
    names = {p.name for p in new.iterdir()}
    if old.is_dir():
        names |= {p.name for p in old.iterdir()}
    different = []
    for name in sorted(names):
        a, b = new / name, old / name
        if name == MANIFEST:
            theirs = _comparable_manifest(b)
            same = theirs is not None and theirs == _comparable_manifest(a)
        else:
            same = a.is_file() and b.is_file() and sha256_file(a) == sha256_file(b)
        if not same:
            different.append(name)
    return different


def _comparable_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = _read_json(path)
    except (QuantcliError, OSError):
        return None
    manifest.pop("created_at", None)
    return manifest


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
    raise NotFoundError(
        f"run {ref!r} not found (looked for {candidate} and in {runs_dir}; "
        "use --runs-dir, or --root for another store)"
    )


def _load(path: Path) -> Run:
    try:
        manifest = RunManifest.from_dict(_read_json(path / MANIFEST))
    except IntegrityError as exc:
        raise IntegrityError(f"{path / MANIFEST}: {exc.message}") from None
    return Run(manifest.run_id, path, manifest)


def list_runs(runs_dir: Path) -> list[Run]:
    """Every saved run under ``runs_dir``, oldest first (temp and broken entries skipped)."""
    if not runs_dir.is_dir():
        return []
    runs = []
    for path in sorted(runs_dir.iterdir()):
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        try:
            # Not e.g. a dataset version of a dataset named "runs": that is no run manifest.
            runs.append(_load(path))
        except QuantcliError:
            continue
    return sorted(runs, key=lambda r: (r.manifest.created_at, r.run_id))


def pinned_config(manifest: RunManifest | Mapping[str, Any], run_dir: Path) -> BacktestConfig:
    """The run's config with the dataset pinned to the exact version (``NAME@<hash>``), the
    parameters its inputs pin (the model strategy's ``model=NAME@vN`` for ``NAME@champion``)
    set to them, and the user files it read replaced by the run directory's copies of them
    (``manifest`` typed or in its JSON form, of which ``config``, ``dataset`` and ``inputs``
    are read)."""
    if isinstance(manifest, RunManifest):
        manifest = manifest.to_dict()
    config = BacktestConfig.from_dict(manifest["config"])
    dataset = manifest["dataset"]
    inputs = manifest.get("inputs", {})
    changes: dict[str, Any] = {"dataset": f"{dataset['name']}@{dataset['content_hash']}"}
    pins = {k: str(v) for entry in inputs.values() for k, v in entry.get("pin", {}).items()}
    if pins:
        changes["params"] = {**config.params, **pins}
    strategy_copy = inputs.get("strategy", {}).get("file")
    if strategy_copy is not None:
        changes["strategy"] = f"{run_dir / strategy_copy}:{config.strategy.rpartition(':')[2]}"
    broker_copy = inputs.get("broker", {}).get("file")
    if broker_copy is not None:
        changes["broker"] = str(run_dir / broker_copy)
    for name in (strategy_copy, broker_copy):
        if name is not None and not (run_dir / name).is_file():
            raise IntegrityError(f"{run_dir / name}: missing (the run's copy of a file it read)")
    return dataclasses.replace(config, **changes)


def reproduce(
    run_dir: Path,
    *,
    root: Path,
    progress: Callable[[float], None] | None = None,
    remote: Remote | None = None,
) -> Reproduction:
    """Re-run a saved run from its manifest in a temp dir and compare every output's hash.

    With ``remote``, what the run pinned is pulled from it first when the store lacks it
    (every hash checked): the dataset version, and what the strategy's ``pull`` hook names
    (the model strategy's model version, its feature set and dataset), so a clean store
    reproduces from the manifest alone.
    """
    from quantcli.backtest.engine import run_backtest
    from quantcli.store.reader import open_dataset

    run = _load(run_dir)
    manifest = run.manifest
    config = pinned_config(manifest, run.path)
    if remote is not None:
        from quantcli.backtest.strategy import BUILTINS, load_class
        from quantcli.store.remotes import ensure_local

        ensure_local(root, manifest.dataset.name, manifest.dataset.content_hash, remote)
        pull = getattr(load_class(config.strategy, BUILTINS)[0], "pull", None)
        if pull is not None:
            pull(root, manifest.inputs, remote)
    try:
        open_dataset(config.dataset, root)
    except NotFoundError:
        raise NotFoundError(
            f"run {run.run_id}: dataset version {config.dataset} is not in the store {root} "
            "(use --root for the store the run was made from)"
        ) from None
    result = run_backtest(config, root=root, progress=progress)
    pinned = manifest.inputs
    recorded_config = manifest.config.to_dict()
    inputs = run_inputs(result, config=recorded_config, root=root)
    # A strategy's own inputs (its setup's) after the run's, labelled by their names.
    names = [*INPUTS, *sorted(pinned.keys() - INPUTS.keys())]
    inputs_changed = tuple(
        INPUTS.get(name, name)
        for name in names
        if name in pinned and pinned[name].get("sha256") != inputs.get(name, {}).get("sha256")
    )
    expected = manifest.outputs
    with tempfile.TemporaryDirectory(prefix="quantcli-reproduce-") as tmp:
        actual, _ = write_outputs(Path(tmp), result, run_id=run.run_id, config=recorded_config)
        different = tuple(sorted(n for n in expected if actual.get(n) != expected[n]))
        keys: tuple[str, ...] = ()
        if "metrics.json" in different:
            keys = _differing_keys(run.metrics(), _read_json(Path(tmp) / "metrics.json"))
    identical = tuple(sorted(n for n in expected if n not in different))
    recorded = manifest.versions
    now = versions()
    changed = tuple(
        f"{name} {recorded.get(name, '?')} -> {now[name]}"
        for name in sorted(now)
        if recorded.get(name) != now[name]
    )
    return Reproduction(run.run_id, identical, different, keys, changed, inputs_changed)


def _differing_keys(a: Mapping[str, object], b: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))
