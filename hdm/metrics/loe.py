"""Lightness order error (preset `loe`), the low-light papers' no-reference companion of NIQE: how much
an enhancement changes the order of lightness between pixels (Wang, Zheng, Hu and Li, "Naturalness
Preserved Enhancement Algorithm for Non-Uniform Illumination Images", IEEE TIP 2013, Sec. IV).

    L(x) = max(R, G, B) of the input, Le(x) of the enhanced image (uint8 values, [0, 255])
    RD(x) = sum over y of [L(x) >= L(y)] XOR [Le(x) >= Le(y)]
    LOE = mean over x of RD(x)

As in the authors' code, both lightness maps are first resized (MATLAB imresize, bicubic with
antialiasing) so that their shorter side is 50 pixels, r = 50 / min(H, W), to (round(H r), round(W r)).
The reference is the degraded input (lq), not a target; lower is better, 0 when the order is kept.
"""
import numpy as np
import torch

from .reference import imresize, quantize, to_numpy

SIDE = 50


def lightness_order_error(lightness, enhanced_lightness):
    """LOE of two 2-D lightness maps of equal size (already down-sampled)."""
    a, b = lightness.ravel(), enhanced_lightness.ravel()
    total = 0
    for start in range(0, a.size, 1024):  # rows of the pair matrix, 1024 at a time
        rows = slice(start, start + 1024)
        total += np.count_nonzero((a[rows, None] >= a[None, :]) ^ (b[rows, None] >= b[None, :]))
    return total / a.size


def _lightness(rgb):
    light = quantize(rgb).max(axis=2)
    h, w = light.shape
    r = SIDE / min(h, w)
    return imresize(light, (int(round(h * r)), int(round(w * r))))


def loe(out, gt=None, lq=None):
    """{'loe': (B,)} of RGB (B, 3, H, W) in [0, 1] against the degraded input `lq`; gt is not used."""
    if lq is None:
        raise ValueError("loe compares an enhanced image with its input: it needs the degraded input (lq)")
    if out.shape != lq.shape:
        raise ValueError(f"output {tuple(out.shape)} and input {tuple(lq.shape)} differ in shape")
    scores = [lightness_order_error(_lightness(i), _lightness(o)) for i, o in zip(to_numpy(lq), to_numpy(out))]
    return {"loe": torch.tensor(scores, dtype=torch.float64)}
