"""Datasets, built by name from an explicit table. Samples are dicts of RGB float tensors in [0, 1]."""
import copy

from .paired import PairedFolder
from .reside import RESIDE

DATASETS = {
    "PairedFolder": PairedFolder,
    "RESIDE": RESIDE,
}


def build_dataset(cfg):
    """Build a dataset from {'type': name, **kwargs}; the dict is not modified."""
    cfg = copy.deepcopy(dict(cfg))
    name = cfg.pop("type", None)
    if name not in DATASETS:
        raise KeyError(f"unknown dataset type {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name](**cfg)


__all__ = ["DATASETS", "build_dataset", "PairedFolder", "RESIDE"]
