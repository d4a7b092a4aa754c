"""Models, built by name from an explicit table."""
import copy

from .blocks import CALayer, DCNBlock, FABlock, FAGroup, Mix, PALayer, RegionConv
from .hdm import HDM

MODELS = {
    "HDM": HDM,
}


def build_model(cfg):
    """Build a model from a config dict {'type': name, **kwargs}; the dict is not modified."""
    cfg = copy.deepcopy(dict(cfg))
    name = cfg.pop("type", None)
    if name not in MODELS:
        raise KeyError(f"unknown model type {name!r}; valid: {', '.join(MODELS)}")
    return MODELS[name](**cfg)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters", "HDM", "CALayer", "PALayer", "FABlock", "FAGroup",
           "Mix", "DCNBlock", "RegionConv"]
