"""Models, built by name from an explicit table."""
from hdm.build import build

from .aecrnet import AECRNet
from .blocks import CALayer, DCNBlock, FABlock, FAGroup, Mix, PALayer, RegionConv
from .hdm import HDM

MODELS = {
    "HDM": HDM,          # Liang et al., ACM MM 2022
    "AECRNet": AECRNet,  # Wu et al., CVPR 2021
}


def build_model(cfg):
    """Build a model from a config dict {'type': name, **kwargs}; the dict is not modified."""
    return build(MODELS, cfg, "model")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters", "HDM", "AECRNet", "CALayer", "PALayer", "FABlock", "FAGroup",
           "Mix", "DCNBlock", "RegionConv"]
