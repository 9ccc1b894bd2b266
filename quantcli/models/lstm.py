"""The ``lstm`` kind: a TensorFlow Keras LSTM over the last ``lookback`` sessions of a symbol.

Each row's input is the sequence of its symbol's last ``lookback`` rows of features (itself
included), standardised by a Normalization layer whose mean and variance come from the training
rows and are stored in the model. A row with fewer earlier rows of its symbol has no sequence:
it is not trained on, and scores NaN, which training drops and counts.

Deterministic on one machine and library set: the seed goes to ``keras.utils.set_random_seed``,
op determinism is on and TensorFlow's thread pools are fixed before its first op. oneDNN may
still order floating-point sums differently on another CPU, so predictions there can differ in
the last bits (see :data:`CROSS_CPU_TOLERANCE`).

The artifact is a ``.keras`` zip, rewritten with fixed member times and save date so equal
models give equal bytes; it is loaded with ``safe_mode=True`` and never as ``.h5``. TensorFlow is
imported only inside these functions.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from quantcli.errors import DataError, IntegrityError, UsageError
from quantcli.models.kinds import CLASSIFIER, ZIP_TIME, ModelKind, renumber_ids

# TensorFlow's intra-op and inter-op pool sizes: fixed, so results never depend on the
# machine's core count (oneDNN's reductions follow the thread count).
INTRA_OP_THREADS = 2
INTER_OP_THREADS = 1
# Largest change in a metric that reproduce accepts from a re-training on another CPU:
# oneDNN's kernels may sum in another order there, and float32 rounding differences grow
# through the epochs. On the recorded CPU nothing may differ.
CROSS_CPU_TOLERANCE = 1e-4
# Sequences per prediction call: large batches amortise the per-call cost.
PREDICT_BATCH = 8192
# What metadata.json's date_saved is rewritten to: the save time is not part of the model.
_SAVED = "1980-01-01@00:00:00"
# Keras names objects shared between layers after their id() when saved.
_SHARED_ID = re.compile(r'(?<="shared_object_id": )[0-9]+')


def _keras() -> Any:
    """Keras on TensorFlow, configured for determinism before any TensorFlow op runs."""
    from quantcli.market.calendar import cache_dir

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    # Keras writes its keras.json into ~/.keras on import: keep it with quantcli's other
    # rebuildable files, so a cron job or CI run leaves the home directory as it found it.
    os.environ.setdefault("KERAS_HOME", str(cache_dir() / "keras"))
    if "tensorflow" not in sys.modules:
        # TensorFlow's C++ logging writes start-up notices to fd 2 before any setting can
        # silence it, which would break quantcli's one-line errors; import errors still raise.
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
                import tensorflow  # noqa: F401
        except ImportError:
            raise UsageError(
                "model kind lstm needs TensorFlow: pip install 'quantcli[lstm]' (make install does)"
            ) from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    import keras
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() != INTRA_OP_THREADS:
        tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
    tf.config.experimental.enable_op_determinism()
    return keras


def windows(x: np.ndarray, groups: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``x`` with ``lookback`` rows of their group up to and including them, and
    their sequences (rows x lookback x features, float32), in the order of ``x``.

    Rows of one group are taken to be in time order, as training's (session, symbol) order
    keeps them.
    """
    _, codes = np.unique(groups, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]])
    ends_of_group = np.r_[starts[1:], len(order)]
    pieces = [
        np.lib.stride_tricks.sliding_window_view(order[a:b], lookback)
        for a, b in zip(starts, ends_of_group, strict=True)
        if b - a >= lookback
    ]
    if not pieces:
        return np.empty(0, dtype=np.int64), np.empty((0, lookback, x.shape[1]), np.float32)
    index = np.concatenate(pieces)
    index = index[np.argsort(index[:, -1], kind="stable")]
    return index[:, -1].astype(np.int64), x[index].astype(np.float32)


class LSTM(ModelKind):
    """One LSTM layer over per-symbol sequences, then a dense output: sigmoid for a direction
    label, linear for a return label."""

    name = "lstm"
    artifact_name = "model.keras"
    sequences: ClassVar[bool] = True
    libraries: ClassVar[tuple[str, ...]] = ("tensorflow-cpu", "keras", "h5py")
    cross_cpu_tolerance: ClassVar[float] = CROSS_CPU_TOLERANCE

    @dataclass(frozen=True)
    class Params:
        """Sessions per sequence, LSTM units, training epochs, batch size and Adam's step."""

        lookback: int = 20
        units: int = 32
        epochs: int = 10
        batch_size: int = 256
        learning_rate: float = 0.001

    def __init__(self, params: Any, *, task: str, seed: int, features: tuple[str, ...]) -> None:
        super().__init__(params, task=task, seed=seed, features=features)
        for field in ("lookback", "units", "epochs", "batch_size"):
            if getattr(params, field) < 1:
                raise UsageError(
                    f"model kind lstm: {field} must be >= 1, got {getattr(params, field)} "
                    f"(-p {field}=)"
                )
        if params.learning_rate <= 0:
            raise UsageError(
                f"model kind lstm: learning_rate must be > 0, got {params.learning_rate} "
                "(-p learning_rate=)"
            )
        self.model: Any = None
        self._serve: Any = None

    def _groups(self, groups: np.ndarray | None) -> np.ndarray:
        if groups is None:
            raise DataError("model kind lstm needs each row's symbol: give a 'symbol' column")
        return groups

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> None:
        """Fit on the rows with a full sequence of their symbol (UsageError if none)."""
        rows, seq = windows(x, self._groups(groups), self.params.lookback)
        if len(rows) == 0:
            raise UsageError(
                f"model kind lstm: no symbol has {self.params.lookback} rows to train on; "
                "widen the window or give a smaller -p lookback="
            )
        keras = _keras()
        keras.utils.set_random_seed(self.seed)
        flat = seq.reshape(-1, seq.shape[-1]).astype(np.float64)
        variance = np.where(flat.var(axis=0) > 0, flat.var(axis=0), 1.0)
        classifier = self.task == CLASSIFIER
        # Layers are named: Keras' default names count up within a process ("lstm_1"), which
        # would make a second equal model's artifact differ.
        model = keras.Sequential(
            [
                keras.Input((self.params.lookback, len(self.features)), name="sequence"),
                keras.layers.Normalization(
                    mean=flat.mean(axis=0), variance=variance, name="standardise"
                ),
                keras.layers.LSTM(self.params.units, name="lstm"),
                keras.layers.Dense(
                    1, activation="sigmoid" if classifier else "linear", name="score"
                ),
            ],
            name="quantcli_lstm",
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=self.params.learning_rate, name="adam"),
            loss="binary_crossentropy" if classifier else "mean_squared_error",
        )
        model.fit(
            seq,
            y[rows].astype(np.float32),
            epochs=self.params.epochs,
            batch_size=self.params.batch_size,
            shuffle=True,
            verbose=0,
        )
        self.model = model
        self._serve = None

    def score(self, x: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """One score per row of ``x``; NaN for a row without a full sequence."""
        rows, seq = windows(x, self._groups(groups), self.params.lookback)
        out = np.full(len(x), np.nan, dtype=np.float64)
        if len(rows):
            _keras()
            out[rows] = self.predict(seq)
        return out

    def predict(self, seq: np.ndarray) -> np.ndarray:
        """Scores of ready-made sequences (rows x lookback x features)."""
        import tensorflow as tf

        if self._serve is None:
            # One traced graph for every batch size: an eager call, or Keras' predict(),
            # costs far more than the LSTM itself for a single sequence.
            shape = [None, self.params.lookback, len(self.features)]
            model = self.model
            self._serve = tf.function(
                lambda t: model(t, training=False),
                input_signature=[tf.TensorSpec(shape, tf.float32)],
            )
        outs = [
            self._serve(tf.constant(seq[i : i + PREDICT_BATCH])).numpy()[:, 0]
            for i in range(0, len(seq), PREDICT_BATCH)
        ]
        return np.concatenate(outs).astype(np.float64) if outs else np.empty(0)

    def dumps(self) -> bytes:
        """The ``.keras`` zip with fixed member times and save date."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / self.artifact_name
            self.model.save(path)
            data = path.read_bytes()
        out = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(data)) as src,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
        ):
            for name in sorted(src.namelist()):
                member = src.read(name)
                if name == "config.json":
                    member = renumber_ids(_SHARED_ID, member.decode("utf-8"))[0].encode("utf-8")
                if name == "metadata.json":
                    doc = json.loads(member)
                    doc["date_saved"] = _SAVED
                    member = json.dumps(doc, sort_keys=True).encode("utf-8")
                dst.writestr(zipfile.ZipInfo(name, ZIP_TIME), member, zipfile.ZIP_DEFLATED)
        return out.getvalue()

    def loads(self, data: bytes) -> None:
        """Load ``.keras`` bytes with ``safe_mode=True``; anything else (an ``.h5`` file
        included) is refused."""
        if not data.startswith(b"PK\x03\x04"):
            raise IntegrityError("refusing to load the artifact: it is not a .keras zip")
        keras = _keras()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / self.artifact_name
            path.write_bytes(data)
            try:
                self.model = keras.saving.load_model(path, safe_mode=True, compile=False)
                self._serve = None
            except Exception as exc:
                text = " ".join(str(exc).split())
                raise IntegrityError(f"refusing to load the artifact: {text}") from None
