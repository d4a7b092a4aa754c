"""Pixel losses. Every loss is forward(out, gt, lq=None) -> scalar; out, gt: (B, C, H, W)."""
import torch.nn as nn
import torch.nn.functional as F


class L1Loss(nn.Module):
    """Mean absolute error."""

    def forward(self, out, gt, lq=None):
        return F.l1_loss(out, gt)


class MSELoss(nn.Module):
    """Mean squared error."""

    def forward(self, out, gt, lq=None):
        return F.mse_loss(out, gt)
