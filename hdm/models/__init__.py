"""Models, built by name from an explicit table."""
import copy

from .aecrnet import AECRNet
from .blocks import CALayer, DCNBlock, FABlock, FAGroup, Mix, PALayer, RegionConv
from .hdm import HDM

MODELS = {
    "HDM": HDM,          # Liang et al., ACM MM 2022
    "AECRNet": AECRNet,  # Wu et al., CVPR 2021
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


__all__ = ["MODELS", "build_model", "count_parameters", "HDM", "AECRNet", "CALayer", "PALayer", "FABlock", "FAGroup",
           "Mix", "DCNBlock", "RegionConv"]
