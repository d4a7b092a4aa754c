"""Perceptual loss (Johnson et al., ECCV 2016) and AECR-Net's contrastive regularisation (Wu et al.,
CVPR 2021, eq. 4). Both are forward(out, gt, lq=None) -> scalar, on RGB in [0, 1]."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.kinds import PATH, OneOf, Range, check_arguments

from .vgg import CONFIGS, VGGFeatures

DISTANCES = {"l1": F.l1_loss, "mse": F.mse_loss}


class PerceptualLoss(nn.Module):
    """sum_i w_i * D(VGG_i(out), VGG_i(gt)), target features detached.

    Args:
        arch: 'vgg16' or 'vgg19'; layers: VGG layer names; layer_weights: one per layer (default 1).
        distance: 'l1' or 'mse'; weights_path, download: where the VGG weights come from.
    """

    # limits of the arguments (hdm.kinds); layer weights are relative, as the losses' weights (hdm.config.WEIGHT)
    LIMITS = {"arch": OneOf(tuple(CONFIGS)), "layer_weights": Range(0, 1e6), "distance": OneOf(tuple(DISTANCES)),
              "weights_path": PATH}

    def __init__(self, arch="vgg16", layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
                 layer_weights: Optional[Sequence[float]] = None, distance="mse", weights_path: Optional[str] = None,
                 download=False):
        check_arguments(PerceptualLoss, locals())
        super().__init__()
        self.layer_weights = list(layer_weights) if layer_weights is not None else [1.0] * len(layers)
        if len(self.layer_weights) != len(layers):
            raise ValueError(f"layer_weights: expected one per layer ({len(layers)}), got {len(self.layer_weights)}")
        self.distance = DISTANCES[distance]
        self.vgg = VGGFeatures(arch, layers, weights_path, download)

    def forward(self, out, gt, lq=None):
        f_out, f_gt = self.vgg(out), self.vgg(gt)
        return sum(w * self.distance(f_out[k], f_gt[k].detach()) for k, w in zip(self.vgg.layers, self.layer_weights))


class ContrastiveLoss(nn.Module):
    """AECR-Net's contrastive regularisation: sum_i w_i * D(G_i(out), G_i(gt)) / D(G_i(out), G_i(hazy)),
    D = L1, G_i = VGG19 relu1_1 ... relu5_1, w = 1/32, 1/16, 1/8, 1/4, 1; gt and hazy features detached.

    Args:
        negatives: 1 (the paper: the sample's own hazy input), r > 1 (Table 4's 1:r: the own hazy input
            plus r - 1 other hazy inputs of the batch, distances averaged), or 0 (CR*: no negatives,
            the numerator alone).
        eps: added to the denominator (the release's 1e-7).
    """

    LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    # limits of the arguments (hdm.kinds): eps keeps the ratio's denominator above 0
    LIMITS = {"negatives": Range(0), "layer_weights": Range(0, 1e6), "eps": Range(0, 1, low_open=True),
              "weights_path": PATH}

    def __init__(self, negatives=1, layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), eps=1e-7,
                 weights_path: Optional[str] = None, download=False):
        check_arguments(ContrastiveLoss, locals())
        super().__init__()
        self.negatives, self.layer_weights, self.eps = negatives, list(layer_weights), eps
        self.vgg = VGGFeatures("vgg19", self.LAYERS, weights_path, download)

    def negative_indices(self, batch):
        """(batch, r) indices of each sample's negatives: itself first, then r - 1 others at random."""
        r = self.negatives
        if r > batch:
            raise ValueError(f"ContrastiveLoss with {r} negatives needs a batch of at least {r}, got {batch}")
        rows = []
        for i in range(batch):
            others = torch.randperm(batch - 1)[: r - 1]
            rows.append(torch.cat([torch.tensor([i]), others + (others >= i).long()]))
        return torch.stack(rows)

    def forward(self, out, gt, lq=None):
        f_out, f_gt = self.vgg(out), self.vgg(gt)
        if self.negatives == 0:
            return sum(w * F.l1_loss(f_out[k], f_gt[k].detach()) for k, w in zip(self.LAYERS, self.layer_weights))
        if lq is None:
            raise ValueError("ContrastiveLoss needs the hazy input lq as its negative")
        f_neg = self.vgg(lq)
        idx = self.negative_indices(out.shape[0]).to(out.device)
        total = 0.0
        for k, w in zip(self.LAYERS, self.layer_weights):
            d_ap = F.l1_loss(f_out[k], f_gt[k].detach())
            neg = f_neg[k].detach()
            d_an = torch.stack([F.l1_loss(f_out[k], neg[idx[:, j]]) for j in range(idx.shape[1])]).mean()
            total = total + w * d_ap / (d_an + self.eps)
        return total
