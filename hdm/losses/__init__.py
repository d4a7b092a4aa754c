"""Losses, built by name from an explicit table; weights live only in the config's loss list.

Constructor arguments: each has the kind of its default, or its annotation; a class states their
limits once, in LIMITS (hdm.kinds), which the config check (before work) and the constructor apply."""
import torch.nn as nn

from hdm.build import build

from .perceptual import ContrastiveLoss, PerceptualLoss
from .pixel import L1Loss, MSELoss

LOSSES = {
    "L1": L1Loss,
    "MSE": MSELoss,
    "Perceptual": PerceptualLoss,      # VGG16/19 features, L1 or MSE (Johnson et al. 2016)
    "Contrastive": ContrastiveLoss,    # AECR-Net's CR (Wu et al. 2021, eq. 4)
}


class WeightedLosses(nn.Module):
    """A weighted sum of losses. forward returns (total, {term name: weighted value})."""

    def __init__(self, specs):
        super().__init__()
        self.names, self.weights = [], []
        self.losses = nn.ModuleList()
        for spec in specs:
            spec = dict(spec)
            name = spec.get("type")
            self.weights.append(float(spec.pop("weight", 1.0)))
            try:
                self.losses.append(build(LOSSES, spec, "loss"))
            except (OSError, ValueError) as err:
                raise type(err)(f"losses.{len(self.names)} ({name}): {err}") from err
            self.names.append(name if name not in self.names else f"{name}_{len(self.names)}")

    def forward(self, out, gt, lq=None):
        terms = {n: w * loss(out, gt, lq) for n, w, loss in zip(self.names, self.weights, self.losses)}
        return sum(terms.values()), terms


__all__ = ["LOSSES", "WeightedLosses", "L1Loss", "MSELoss", "PerceptualLoss", "ContrastiveLoss"]
