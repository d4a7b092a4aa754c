"""NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013), as LIVE's MATLAB release computes it.

- Input: the grey image as the MATLAB release makes it (`rgb2gray` of the uint8 image, rounded to
  uint8: `convert="gray"`, the default), or MATLAB's Y (`convert="y"`, rounded; some papers use it,
  and it changes scores more than implementations differ). The grey image is cropped to whole
  96 x 96 blocks.
- Two scales (the second by MATLAB `imresize(im, 0.5)`: bicubic with antialiasing); at each, the
  mean-subtracted contrast-normalised image (7 x 7 Gaussian, sigma 7/6, replicate borders,
  (im - mu) / (sigma + 1)) is cut into blocks (96 and 48 px) and each block gives 18 features
  (an AGGD fit of the coefficients and of four neighbour products).
- Score = sqrt((mu_p - mu_d)^T pinv((C_p + C_d) / 2) (mu_p - mu_d)) against LIVE's pristine model
  (data/niqe_pristine.npz; see data/NIQE_NOTICE.txt for its provenance and licence).
Lower is better.
"""
import functools
import math
import os

import numpy as np
import torch
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

from .reference import imresize_half, matlab_y, quantize, to_numpy

BLOCK = 96
_GAM = np.arange(0.2, 10.0005, 0.001)
_R_GAM = gamma_fn(2.0 / _GAM) ** 2 / (gamma_fn(1.0 / _GAM) * gamma_fn(3.0 / _GAM))
# MATLAB rgb2gray weights (the inverse of the NTSC transform's first row)
_GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


@functools.lru_cache(maxsize=1)
def pristine_model():
    """(mu (36,), cov (36, 36)) of LIVE's pristine NIQE model."""
    with np.load(os.path.join(os.path.dirname(__file__), "data", "niqe_pristine.npz")) as d:
        return d["mu"], d["cov"]


def _gaussian_window(size=7, sigma=7 / 6):
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def _aggd(vec):
    """AGGD fit as LIVE's estimateaggdparam: (alpha, beta_left, beta_right), with MATLAB's semantics
    for degenerate blocks: a side with no values has mean([]) = NaN, so its std and beta are NaN; a
    NaN ratio makes MATLAB's `min` return its first index, alpha = 0.2. NIQE then drops the NaN
    features of such blocks (nanmean, nancov)."""
    left, right = vec[vec < 0], vec[vec > 0]
    left_std = math.sqrt(np.mean(left ** 2)) if left.size else math.nan
    right_std = math.sqrt(np.mean(right ** 2)) if right.size else math.nan
    mean_sq = np.mean(vec ** 2)
    gamma_hat = left_std / right_std
    r_hat = np.mean(np.abs(vec)) ** 2 / mean_sq if mean_sq > 0 else math.nan
    r_norm = r_hat * (gamma_hat ** 3 + 1) * (gamma_hat + 1) / (gamma_hat ** 2 + 1) ** 2
    alpha = _GAM[0] if math.isnan(r_norm) else _GAM[np.argmin((_R_GAM - r_norm) ** 2)]
    scale = math.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
    return alpha, left_std * scale, right_std * scale


def _block_features(block):
    """LIVE's computefeature: 18 features of one block of MSCN coefficients."""
    alpha, beta_l, beta_r = _aggd(block.ravel())
    feats = [alpha, (beta_l + beta_r) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # horizontal, vertical, two diagonals (circshift)
        alpha, beta_l, beta_r = _aggd((block * np.roll(block, shift, axis=(0, 1))).ravel())
        feats += [alpha, (beta_r - beta_l) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha), beta_l, beta_r]
    return feats


def _scale_features(img, block):
    win = _gaussian_window()
    mu = correlate(img, win, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, win, mode="nearest") - mu * mu))
    mscn = (img - mu) / (sigma + 1)
    rows, cols = img.shape[0] // block, img.shape[1] // block
    return np.array([_block_features(mscn[r * block:(r + 1) * block, c * block:(c + 1) * block])
                     for c in range(cols) for r in range(rows)])


def niqe_of_gray(img):
    """NIQE of a grey image in [0, 255] (2-D float array) with at least one 96 x 96 block."""
    h, w = (img.shape[0] // BLOCK) * BLOCK, (img.shape[1] // BLOCK) * BLOCK
    if h == 0 or w == 0:
        raise ValueError(f"NIQE needs images of at least {BLOCK} x {BLOCK} pixels, got {img.shape}")
    img = img[:h, :w].astype(np.float64)
    feats = np.hstack([_scale_features(img, BLOCK), _scale_features(imresize_half(img), BLOCK // 2)])
    mu_p, cov_p = pristine_model()
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False) if len(feats) > 1 else np.zeros_like(cov_p)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ np.linalg.pinv((cov_p + cov_d) / 2) @ diff))


def niqe(out, gt=None, convert="gray"):
    """No-reference preset: {'niqe': (B,)} of RGB tensors in [0, 1]; gt is ignored."""
    if convert not in ("gray", "y"):
        raise ValueError(f"convert {convert!r} is not 'gray' (MATLAB rgb2gray) or 'y' (MATLAB rgb2ycbcr)")
    scores = []
    for rgb in to_numpy(out):
        rgb255 = quantize(rgb)
        grey = np.floor(rgb255 @ _GRAY + 0.5) if convert == "gray" else matlab_y(rgb255, rounded=True)
        scores.append(niqe_of_gray(grey))
    return {"niqe": torch.tensor(scores, dtype=torch.float64)}
