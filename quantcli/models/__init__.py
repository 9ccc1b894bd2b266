"""Models: kinds, walk-forward evaluation, metrics, the registry, training and reproduction.

``from quantcli.models import TrainSpec, train`` does what ``quantcli model train`` does.
Importing this package imports no scikit-learn: the kinds import it inside the functions that
fit or load.
"""

from __future__ import annotations

from quantcli.models.registry import load
from quantcli.models.train import TrainResult, TrainSpec, train, train_on_frames

__all__ = ["TrainResult", "TrainSpec", "load", "train", "train_on_frames"]
