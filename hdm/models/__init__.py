"""Models, built by name from an explicit table.

The contract every model keeps: `forward(lq, **extras)` takes RGB (B, 3, H, W) in [0, 1] of any size
and returns the restored image at the input size; `extra_inputs` names the batch keys it needs as
extras (e.g. ('trans',) for HDM with depth-binned regions), usually none. Models with no parameters
(the DCP baselines) need no weights file; models that can show intermediate maps have `maps(lq)`.
A model that needs inputs of at least some side states it as MIN_INPUT_SIDE (the discriminator: 128);
training checks its crops and images against it before work.

Constructor arguments: each has the kind of its default, or its annotation; a class states their
limits once, in LIMITS (hdm.kinds), which the config check (before work) and the constructor apply.
"""
from hdm.build import build

from .aecrnet import AECRNet
from .blocks import CALayer, DCNBlock, FABlock, FAGroup, Mix, PALayer, RegionConv
from .dcp_baselines import DCP, PFDCP
from .hdm import HDM
from .hybrid import Discriminator, HybridNet

MODELS = {
    "HDM": HDM,                      # Liang et al., ACM MM 2022
    "AECRNet": AECRNet,              # Wu et al., CVPR 2021
    "HybridNet": HybridNet,          # Ren et al., TIP 2019 (low light), generator
    "Discriminator": Discriminator,  # Ren et al., TIP 2019, Table I
    "DCP": DCP,                      # He et al., CVPR 2009 (no parameters to train)
    "PFDCP": PFDCP,                  # pyramid fusion DCP (no parameters to train)
}


def build_model(cfg):
    """Build a model from a config dict {'type': name, **kwargs}; the dict is not modified."""
    return build(MODELS, cfg, "model")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "build_model", "count_parameters", "HDM", "AECRNet", "HybridNet", "Discriminator", "DCP", "PFDCP",
           "CALayer", "PALayer", "FABlock", "FAGroup",
           "Mix", "DCNBlock", "RegionConv"]
