"""hgb versions store their bitvector tables beside the skops artifact: scored from them
without scikit-learn, checked like the artifact, and absent from versions trained before."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_models import edit_metadata, frames, run
from test_models_predict import PREDICT, trained  # noqa: F401 (a fixture)

from quantcli.core.hashing import sha256_hex
from quantcli.errors import IntegrityError
from quantcli.models import load, registry
from quantcli.models.bitvector import TABLES_FILE, build_tables, dumps_tables, loads_tables
from quantcli.models.kinds import ZIP_TIME

# A fresh process: load the version, score the rows, and say whether sklearn or skops came in.
SCORE_CODE = """
import json, sys
from pathlib import Path
import polars as pl
from quantcli.models import load
model = load(Path(sys.argv[1]), "m@v1")
scores = model.score(pl.read_parquet(sys.argv[2]))
heavy = sorted(m for m in ("sklearn", "skops") if m in sys.modules)
print(json.dumps({"heavy": heavy, "scores": scores.tobytes().hex()}))
"""


def version_dir(root: Path) -> Path:
    return registry.models_root(root) / "m" / "v1"


def features() -> pl.DataFrame:
    f, _ = frames()
    return f.drop("symbol", "ts").drop_nulls()


def test_hgb_scores_from_its_tables_in_a_process_without_sklearn(tmp_path: Path) -> None:
    meta = run(tmp_path, kind="hgb", params={"max_iter": "8"}).metadata
    data = (version_dir(tmp_path) / TABLES_FILE).read_bytes()
    assert meta["files"][TABLES_FILE] == sha256_hex(data)
    x = features()
    x.write_parquet(tmp_path / "x.parquet")
    done = subprocess.run(
        [sys.executable, "-c", SCORE_CODE, str(tmp_path), str(tmp_path / "x.parquet")],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["heavy"] == []
    # The same bits as scikit-learn's own predict_proba on the skops artifact.
    estimator = load(tmp_path, "m@v1").model.model  # type: ignore[attr-defined]
    expected = estimator.predict_proba(x.to_numpy())[:, 1]
    assert np.frombuffer(bytes.fromhex(out["scores"])).tobytes() == expected.tobytes()
    # The tables are the ones the estimator gives, byte for byte; a retrain adds nothing.
    tables = build_tables(estimator)
    assert tables is not None and dumps_tables(tables) == data
    assert not run(tmp_path, kind="hgb", params={"max_iter": "8"}).created


def test_a_changed_tables_file_is_refused_and_verify_names_it(tmp_path: Path) -> None:
    run(tmp_path, kind="hgb", params={"max_iter": "3"})
    path = version_dir(tmp_path) / TABLES_FILE
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"tables\.npz: file sha256 does not match"):
        load(tmp_path, "m@v1")
    (report,) = registry.verify(tmp_path, "m@v1")
    assert not report.ok and report.changed == (TABLES_FILE,)
    path.unlink()
    with pytest.raises(IntegrityError, match="cannot read the file"):
        load(tmp_path, "m@v1")


def test_a_predict_on_changed_tables_is_one_line(cli, store: Path, trained) -> None:  # noqa: F811
    run(store, kind="hgb", params={"max_iter": "3"}, name="h")
    path = registry.models_root(store) / "h" / "v1" / TABLES_FILE
    path.chmod(0o644)
    path.write_bytes(b"changed")
    res = cli(*PREDICT[:2], "h@v1", *PREDICT[3:])
    assert res.exit_code == 1
    assert "h@v1 cannot be loaded" in res.stderr and "tables.npz" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_version_without_tables_loads_its_skops_artifact(tmp_path: Path) -> None:
    run(tmp_path, kind="hgb", params={"max_iter": "3"})
    fast = load(tmp_path, "m@v1")
    x = features()
    expected = fast.score(x)
    assert fast.model._stored is not None  # type: ignore[attr-defined]

    def before_tables(meta: dict[str, object]) -> None:
        files = meta["files"]
        assert isinstance(files, dict)
        del files[TABLES_FILE]

    edit_metadata(tmp_path, "m@v1", before_tables)
    (version_dir(tmp_path) / TABLES_FILE).unlink()
    old = load(tmp_path, "m@v1")
    assert old.model._stored is None  # type: ignore[attr-defined]
    assert np.array_equal(old.score(x), expected)
    assert registry.verify(tmp_path, "m@v1")[0].ok


def test_the_estimator_of_a_version_restored_from_tables_loads_on_demand(tmp_path: Path) -> None:
    meta = run(tmp_path, kind="hgb", params={"max_iter": "3"}).metadata
    kind = load(tmp_path, "m@v1").model
    assert kind._artifact is not None  # type: ignore[attr-defined]
    assert sha256_hex(kind.dumps()) == meta["artifact_sha256"]
    assert kind._artifact is None and kind._stored is not None  # type: ignore[attr-defined]


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, value, allow_pickle=True)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", ZIP_TIME), member.getvalue())
    return out.getvalue()


def test_tables_that_could_read_outside_their_arrays_are_refused(tmp_path: Path) -> None:
    run(tmp_path, kind="hgb", params={"max_iter": "3"})
    with np.load(version_dir(tmp_path) / TABLES_FILE, allow_pickle=False) as archive:
        good = {name: archive[name] for name in archive.files}
    assert loads_tables(_npz(good)).n_features == good["n_features"].item()
    bad = [
        {"offsets": good["offsets"] + len(good["table"])},
        {"features": good["features"] + 100},
        {"missing": good["missing"] + good["thresholds"].shape[1]},
        {"thresholds": np.zeros_like(good["thresholds"])},
        {"table": good["table"].astype(np.int8)},
        {"link": np.array("softmax")},
    ]
    for change in bad:
        with pytest.raises(ValueError, match="tables"):
            loads_tables(_npz({**good, **change}))
    # Never unpickled: an object array is an error, not a load.
    with pytest.raises(ValueError, match="allow_pickle"):
        loads_tables(_npz({**good, "values": np.array([object()], dtype=object)}))
    with pytest.raises(KeyError):
        loads_tables(_npz({k: v for k, v in good.items() if k != "table"}))


def test_a_refused_call_writes_no_output(cli, store: Path, trained, tmp_path: Path) -> None:  # noqa: F811
    first = tmp_path / "a.parquet"
    ok = cli(*PREDICT, "--request-id", "r1", "--output", str(first))
    assert ok.exit_code == 0 and first.is_file()
    again = tmp_path / "b.parquet"
    refused = cli(*PREDICT, "--request-id", "r1", "--output", str(again))
    assert refused.exit_code != 0 and not again.exists()
