"""Models: kinds, walk-forward evaluation, metrics, the registry, training, reproduction,
routers and predictions with their audit log.

``from quantcli.models import TrainSpec, train`` does what ``quantcli model train`` does;
``from quantcli.models import predict`` what ``quantcli model predict`` does.
Importing this package imports no scikit-learn: the kinds import it inside the functions that
fit or load.
"""

from __future__ import annotations

from quantcli.models.predict import Prediction, Predictor, predict
from quantcli.models.registry import load
from quantcli.models.router import route
from quantcli.models.train import TrainResult, TrainSpec, train, train_on_frames

__all__ = [
    "Prediction",
    "Predictor",
    "TrainResult",
    "TrainSpec",
    "load",
    "predict",
    "route",
    "train",
    "train_on_frames",
]
