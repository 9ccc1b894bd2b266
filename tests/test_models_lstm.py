"""The TensorFlow LSTM kind: sequences within a symbol, determinism, the .keras artifact."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models import frames, run, window

from quantcli.errors import DataError, IntegrityError, UsageError
from quantcli.models import load, registry
from quantcli.models.kinds import make_kind, parse_kind_params
from quantcli.models.lstm import windows
from quantcli.models.reproduce import reproduce_on_frames

pytest.importorskip("tensorflow")

# Small enough to train in seconds: 3 symbols x 120 sessions, 2 epochs.
PARAMS = {"lookback": "5", "units": "8", "epochs": "2", "batch_size": "64"}
SMALL: dict[str, Any] = {"frames": frames(symbols=3, days=120), "folds": 2, **window(120, 80)}


def train(root: Path, **kw: Any) -> dict[str, Any]:
    return dict(run(root, kind="lstm", **{"params": PARAMS, **SMALL, **kw}).metadata)


def artifact(root: Path, meta: dict[str, Any]) -> Path:
    return registry.models_root(root) / meta["name"] / f"v{meta['version']}" / meta["artifact"]


@settings(max_examples=50, deadline=None)
@given(
    groups=st.lists(st.sampled_from("ABC"), min_size=0, max_size=40),
    lookback=st.integers(1, 6),
)
def test_windows_are_the_last_rows_of_the_same_symbol(groups: list[str], lookback: int) -> None:
    g = np.asarray(groups, dtype=object)
    x = np.arange(len(g), dtype=np.float64)[:, None]
    rows, seq = windows(x, g, lookback)
    expected = [
        i for i in range(len(g)) if sum(1 for s in groups[: i + 1] if s == groups[i]) >= lookback
    ]
    assert rows.tolist() == expected
    for row, window_ in zip(rows, seq, strict=True):
        same = [j for j in range(row + 1) if groups[j] == groups[row]][-lookback:]
        assert window_[:, 0].tolist() == same


def test_trains_deterministically_and_counts_rows_without_history(tmp_path: Path) -> None:
    a = train(tmp_path / "a")
    b = train(tmp_path / "b")
    assert a["kind"] == "lstm" and a["artifact"] == "model.keras"
    assert a["metrics"] == b["metrics"]
    assert a["predictions_sha256"] == b["predictions_sha256"]
    assert artifact(tmp_path / "a", a).read_bytes() == artifact(tmp_path / "b", b).read_bytes()
    assert set(a["metrics"]) >= {"auc", "log_loss", "accuracy", "brier", "ic_mean"}
    # Test blocks see earlier rows' features, so only a symbol's first rows lack history.
    assert [f["short_history_rows"] for f in a["fold_results"]] == [0, 0]
    assert run(tmp_path / "a", kind="lstm", params=PARAMS, **SMALL).created is False
    other = train(tmp_path / "a", seed=8)
    assert other["predictions_sha256"] != a["predictions_sha256"]


def test_deterministic_across_processes(tmp_path: Path) -> None:
    here = train(tmp_path / "here")
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from test_models_lstm import train\n"
        "print(json.dumps(train(Path(sys.argv[1]))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "there")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there["predictions_sha256"] == here["predictions_sha256"]
    assert there["artifact_sha256"] == here["artifact_sha256"]
    assert there["metrics"] == here["metrics"]


def test_regressor_and_reproduce(tmp_path: Path) -> None:
    meta = train(tmp_path, label="return:5")
    assert set(meta["metrics"]) >= {"mae", "rmse", "ic_mean"}
    f, lab = SMALL["frames"]
    report = reproduce_on_frames(tmp_path, "m@v1", f, lab)
    assert report.identical, report.differences


def fitted(seed: int = 3) -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2))
    groups = np.tile(np.array(["A", "B", "C"]), 30)
    params = parse_kind_params("lstm", {"lookback": "4", "units": "4", "epochs": "1"})
    model = make_kind("lstm", params, task="classifier", seed=seed, features=("a", "b"))
    model.fit(x, (x[:, 0] > 0).astype(np.float64), groups)
    return model, x, groups


def test_save_load_round_trip_gives_the_same_scores() -> None:
    model, x, groups = fitted()
    score = model.score(x, groups)
    assert np.isnan(score[:9]).all() and np.isfinite(score[9:]).all()
    data = model.dumps()
    assert data == fitted()[0].dumps()
    again = make_kind(
        "lstm", dict(model.params.__dict__), task="classifier", seed=3, features=("a", "b")
    )
    again.loads(data)
    assert np.array_equal(again.score(x, groups), score, equal_nan=True)
    with pytest.raises(DataError, match="'symbol' column"):
        again.score(x)


def test_registry_load_scores_by_symbol_and_refuses_a_tampered_artifact(tmp_path: Path) -> None:
    meta = train(tmp_path)
    files = sorted(p.name for p in artifact(tmp_path, meta).parent.iterdir())
    assert files == ["metadata.json", "model.keras"]
    assert not list(tmp_path.rglob("*.h5"))
    f, _ = SMALL["frames"]
    score = load(tmp_path, "m@v1").score(f.drop_nulls().sort("symbol", "ts"))
    assert np.isfinite(score).sum() == f.drop_nulls().height - 3 * 4
    path = artifact(tmp_path, meta)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="artifact sha256 does not match"):
        load(tmp_path, "m@v1")


def test_h5_and_unsafe_artifacts_are_never_read() -> None:
    import keras

    model, _, _ = fitted()
    with pytest.raises(IntegrityError, match=r"not a \.keras zip"):
        model.loads(b"\x89HDF\r\n\x1a\n" + bytes(64))
    # A Lambda layer is code: safe_mode refuses it.
    unsafe = keras.Sequential([keras.Input((4, 2)), keras.layers.Lambda(lambda t: t * 2)])
    target = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(model.dumps())) as src:
        names = src.namelist()
    assert "model.weights.h5" in names  # Keras' weights inside the zip, not a legacy .h5 model
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        unsafe.save(Path(tmp) / "u.keras")
        target.write((Path(tmp) / "u.keras").read_bytes())
    with pytest.raises(IntegrityError, match="refusing to load the artifact"):
        model.loads(target.getvalue())


def test_bad_parameters_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"lookback must be >= 1, got 0 \(-p lookback=\)"):
        make_kind(
            "lstm",
            parse_kind_params("lstm", {"lookback": "0"}),
            task="classifier",
            seed=1,
            features=("a",),
        )
    with pytest.raises(UsageError, match=r"model kind lstm: .*units"):
        parse_kind_params("lstm", {"units": "many"})
    with pytest.raises(UsageError, match="learning_rate must be > 0"):
        train(tmp_path, params={**PARAMS, "learning_rate": "0"})
    with pytest.raises(UsageError, match="no symbol has 500 rows"):
        train(tmp_path, params={**PARAMS, "lookback": "500"})
    assert registry.names(tmp_path) == []


def record(root: Path, meta: dict[str, Any], *, cpu: str, shift: float) -> None:
    """Rewrite version 1's metadata as if it had been trained on ``cpu`` with each float
    metric ``shift`` away and other predictions (what oneDNN on another CPU may give)."""
    doc = {
        **meta,
        "cpu": cpu,
        "predictions_sha256": "0" * 64,
        "metrics": {
            k: v + shift if isinstance(v, float) else v for k, v in meta["metrics"].items()
        },
    }
    path = artifact(root, meta).parent / "metadata.json"
    path.chmod(0o644)
    path.write_bytes(registry.metadata_bytes(doc))


@pytest.mark.parametrize("kind", ["lstm", "logistic"])
def test_reproduce_allows_a_stated_tolerance_only_for_lstm_on_another_cpu(
    tmp_path: Path, kind: str
) -> None:
    from quantcli.models.lstm import CROSS_CPU_TOLERANCE
    from quantcli.models.train import cpu_name

    params = PARAMS if kind == "lstm" else {}
    meta = dict(run(tmp_path, kind=kind, **{**SMALL, "params": params}).metadata)
    assert meta["cpu"] == cpu_name()
    f, lab = SMALL["frames"]
    small = CROSS_CPU_TOLERANCE / 10
    record(tmp_path, meta, cpu="another CPU", shift=small)
    report = reproduce_on_frames(tmp_path, "m@v1", f, lab)
    if kind == "lstm":
        assert report.identical, report.differences
        assert "reproduced on another CPU (metrics within 0.0001" in report.summary()
        assert {"tensorflow-cpu", "keras", "h5py"} <= set(meta["libraries"])
    else:
        assert not report.identical and "predictions: sha256" in report.summary()
    record(tmp_path, meta, cpu="another CPU", shift=CROSS_CPU_TOLERANCE * 10)
    assert "metrics: " in reproduce_on_frames(tmp_path, "m@v1", f, lab).summary()
    if kind == "lstm":
        # On the CPU it was recorded on, nothing may differ.
        record(tmp_path, meta, cpu=cpu_name(), shift=small)
        same_cpu = reproduce_on_frames(tmp_path, "m@v1", f, lab)
        assert not same_cpu.identical and same_cpu.tolerance == 0.0


def test_keras_leaves_the_home_directory_alone(tmp_path: Path) -> None:
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "QUANTCLI_CACHE_DIR": str(cache)}
    env.pop("KERAS_HOME", None)
    code = "from quantcli.models.lstm import _keras; _keras()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert list(home.iterdir()) == []
    assert (cache / "keras").is_dir()


def test_model_reproduce_accepts_only_the_stated_tolerance_on_another_cpu(
    cli: Any, store: Path
) -> None:
    """Through the CLI: an lstm recorded on another CPU reproduces (exit 0, saying so) when its
    metrics moved by at most CROSS_CPU_TOLERANCE, and fails (exit 1, naming the metrics) when
    they moved by more."""
    from test_models import published_feature_set
    from test_models_cli import TRAIN, one_line_error

    from quantcli.models.lstm import CROSS_CPU_TOLERANCE

    published_feature_set(store)
    args = [*TRAIN[:8], "lstm", *TRAIN[9:]]
    res = cli(*args, *(f"-p{k}={v}" for k, v in PARAMS.items()), "--folds", "2")
    assert res.exit_code == 0, res.stderr
    meta = registry.metadata(store, "m@v1")
    record(store, meta, cpu="another CPU", shift=CROSS_CPU_TOLERANCE / 2)
    within = cli("model", "reproduce", "m@v1")
    assert within.exit_code == 0, within.stderr
    assert within.stdout.startswith("m@v1: reproduced on another CPU (metrics within 0.0001")
    record(store, meta, cpu="another CPU", shift=CROSS_CPU_TOLERANCE * 2)
    beyond = cli("model", "reproduce", "m@v1")
    assert beyond.exit_code == 1
    assert "metrics: " in one_line_error(beyond)
