"""Full-reference presets that follow each community's evaluation scripts (NumPy, float64).

Every preset takes RGB tensors (B, 3, H, W) in [0, 1] (output, target) and returns {name: (B,)}.

- `matlab_y_uint8`: Restormer / MPRNet `evaluate_PSNR_SSIM.m`. Both images quantised to uint8, Y by
  MATLAB `rgb2ycbcr` on uint8 (so Y is rounded to an integer), PSNR with peak 255, SSIM of Wang et
  al.'s `ssim_index` (Gaussian 11 x 11, sigma 1.5, 'valid' filtering, K = (0.01, 0.03), L = 255).
- `matlab_y_double`: PReNet / RCDNet scripts: `rgb2ycbcr(im2double(...))`, Y not rounded; the same
  PSNR and SSIM formulas (Y scaled to [0, 255]).
- `basicsr`: BasicSR's `calculate_psnr` / `calculate_ssim` on its uint8 outputs: RGB (default) or Y
  (`y=True`, BasicSR's unrounded Y), `crop_border` pixels removed on each side; SSIM per channel,
  averaged.
- `lol_rgb`: LOL evaluation on uint8 RGB: PSNR (peak 255) and SSIM as above averaged over R, G, B,
  plus the HSV errors of Ren et al. TIP 2019, Table III: MSE of H and S (in [0, 1], as MATLAB's
  `rgb2hsv`), of V (in [0, 255]) and their mean MSE_hsv. `gt_mean=True` first scales the output so its
  mean grey level equals the target's (the "GT-mean" protocol of some low-light papers); off by
  default and recorded with the results.
"""
import math

import numpy as np
import torch
from scipy.ndimage import correlate

# MATLAB rgb2ycbcr: Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1]
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def to_numpy(x):
    """(B, 3, H, W) tensor in [0, 1] -> float64 array (B, H, W, 3), clamped."""
    return x.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().double().numpy()


def quantize(rgb):
    """[0, 1] float -> the uint8 levels 0..255 (as float64), rounded half away from zero as MATLAB's uint8."""
    return np.floor(rgb * 255.0 + 0.5)


def matlab_y(rgb255, rounded):
    """MATLAB rgb2ycbcr luma of RGB in [0, 255] -> Y in [16, 235] (rounded to integers for uint8 input)."""
    y = 16.0 + rgb255 @ _Y_WEIGHTS / 255.0
    return np.floor(y + 0.5) if rounded else y


def _gaussian(size=11, sigma=1.5):
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def ssim_valid(a, b, peak=255.0):
    """Wang et al.'s ssim_index of two 2-D arrays: Gaussian 11/1.5, 'valid' filtering, mean of the map."""
    win = _gaussian()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    crop = (slice(5, -5), slice(5, -5))

    def f(t):
        return correlate(t, win, mode="constant")[crop]

    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11 x 11 pixels, got {a.shape}")
    mu_a, mu_b = f(a), f(b)
    saa, sbb, sab = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return float(ssim_map.mean())


def psnr_255(a, b):
    mse = float(np.mean((a - b) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _per_image(out, gt, fn):
    if out.shape != gt.shape:
        raise ValueError(f"output {tuple(out.shape)} and target {tuple(gt.shape)} differ in shape")
    rows = [fn(o, g) for o, g in zip(to_numpy(out), to_numpy(gt))]
    return {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in rows[0]}


def _y_scores(o, g, rounded):
    yo, yg = matlab_y(quantize(o), rounded), matlab_y(quantize(g), rounded)
    return {"psnr": psnr_255(yo, yg), "ssim": ssim_valid(yo, yg)}


def matlab_y_uint8(out, gt):
    """Restormer/MPRNet MATLAB protocol (see module docstring)."""
    return _per_image(out, gt, lambda o, g: _y_scores(o, g, rounded=True))


def matlab_y_double(out, gt):
    """PReNet/RCDNet MATLAB protocol: unrounded Y of the [0, 1] images.

    PReNet's scripts read the result PNGs (uint8) with im2double: outputs are quantised first."""
    return _per_image(out, gt, lambda o, g: _y_scores(o, g, rounded=False))


def basicsr(out, gt, y=False, crop_border=0):
    """BasicSR's calculate_psnr / calculate_ssim on uint8 images (RGB, or Y with y=True)."""
    def scores(o, g):
        o, g = quantize(o), quantize(g)
        if y:
            o, g = matlab_y(o, rounded=False)[..., None], matlab_y(g, rounded=False)[..., None]
        if crop_border:
            o, g = o[crop_border:-crop_border, crop_border:-crop_border], g[crop_border:-crop_border, crop_border:-crop_border]
        return {"psnr": psnr_255(o, g), "ssim": float(np.mean([ssim_valid(o[..., c], g[..., c]) for c in range(o.shape[2])]))}
    return _per_image(out, gt, scores)


def rgb_to_hsv(rgb):
    """MATLAB rgb2hsv of RGB in [0, 1] (..., 3) -> H, S, V in [0, 1]."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1), 0.0)
    safe = np.where(delta > 0, delta, 1)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv_errors(a, b):
    """Ren et al. TIP 2019 Table III: MSE of H and S (in [0, 1]) and of V (in [0, 255]), and MSE_hsv,
    their mean. a, b: RGB in [0, 1]."""
    ha, hb = rgb_to_hsv(a), rgb_to_hsv(b)
    mse = [float(np.mean((ha[..., c] - hb[..., c]) ** 2)) for c in range(3)]
    mse[2] *= 255.0 ** 2
    return {"mse_h": mse[0], "mse_s": mse[1], "mse_v": mse[2], "mse_hsv": float(np.mean(mse))}


def lol_rgb(out, gt, gt_mean=False):
    """LOL protocol on uint8 RGB; optional GT-mean brightness alignment; plus MSE in HSV."""
    def scores(o, g):
        if gt_mean:
            grey = np.array([0.299, 0.587, 0.114])
            o = np.clip(o * ((g @ grey).mean() / max((o @ grey).mean(), 1e-12)), 0, 1)
        o255, g255 = quantize(o), quantize(g)
        return {"psnr": psnr_255(o255, g255),
                "ssim": float(np.mean([ssim_valid(o255[..., c], g255[..., c]) for c in range(3)])),
                **hsv_errors(o255 / 255, g255 / 255)}
    return _per_image(out, gt, scores)


# ----- MATLAB imresize (bicubic, antialiased when shrinking), as NIQE and LOE use it -----


def _cubic(x):
    a = np.abs(x)
    return np.where(a <= 1, 1.5 * a ** 3 - 2.5 * a ** 2 + 1,
                    np.where(a <= 2, -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2, 0.0))


def imresize_matrix(n, scale, n_out):
    """(n_out, n) weights of MATLAB imresize along one axis of length n with the given scale (bicubic;
    the kernel stretched by 1 / scale when shrinking, i.e. antialiased; symmetric boundary)."""
    shrink = scale < 1
    width = 4.0 / scale if shrink else 4.0
    mat = np.zeros((n_out, n))
    mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    for i in range(n_out):
        u = (i + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based centre in the input
        idx = math.floor(u - width / 2) + np.arange(int(math.ceil(width)) + 2)
        w = scale * _cubic(scale * (u - idx)) if shrink else _cubic(u - idx)
        w = w / w.sum()
        for j, wt in zip(mirror[np.mod(idx - 1, 2 * n)], w):
            mat[i, j] += wt
    return mat


def imresize(img, size):
    """MATLAB imresize(img, [H W]) of a 2-D float array (each axis scaled by its own out / in)."""
    (h, w), (oh, ow) = img.shape, size
    return imresize_matrix(h, oh / h, oh) @ img @ imresize_matrix(w, ow / w, ow).T


def imresize_half(img):
    """MATLAB imresize(img, 0.5) of a 2-D float array (scale 0.5 exactly; ceil(n / 2) outputs)."""
    (h, w) = img.shape
    return imresize_matrix(h, 0.5, math.ceil(h / 2)) @ img @ imresize_matrix(w, 0.5, math.ceil(w / 2)).T
