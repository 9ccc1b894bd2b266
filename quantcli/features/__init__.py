"""Versioned feature sets built into the store, and the labels models learn from."""

from quantcli.features.build import (
    FeatureSet,
    build_features,
    list_feature_sets,
    open_feature_set,
)
from quantcli.features.labels import LabelSpec, make_labels
from quantcli.features.spec import FeatureSpec, load_features

__all__ = [
    "FeatureSet",
    "FeatureSpec",
    "LabelSpec",
    "build_features",
    "list_feature_sets",
    "load_features",
    "make_labels",
    "open_feature_set",
]
