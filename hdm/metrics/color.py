"""CIEDE2000 colour difference (preset `ciede2000`), as the NTIRE dehazing challenges and the NH-HAZE
and Dense-HAZE papers report it: the mean over pixels of Delta E_00 between the result and the target
in CIELAB. Lower is better.

- Inputs are quantised to uint8 first, as the result images are saved and read by the challenge
  scripts, then converted sRGB (IEC 61966-2-1 gamma) -> XYZ -> CIELAB with the D65 white point
  (0.95047, 1, 1.08883), the constants of scikit-image's `rgb2lab`.
- Delta E_00 follows Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula: implementation
  notes...", Color Res. Appl. 2005, with kL = kC = kH = 1 (tested against scikit-image's
  `deltaE_ciede2000`).
"""
import numpy as np
import torch

SRGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
D65 = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb):
    """(..., 3) sRGB in [0, 1] (float64) -> CIELAB (..., 3): L in [0, 100]."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ SRGB_TO_XYZ.T / D65
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def delta_e_2000(lab1, lab2):
    """Per-pixel CIEDE2000 between two (..., 3) CIELAB arrays."""
    (l1, a1, b1), (l2, a2, b2) = np.moveaxis(lab1, -1, 0), np.moveaxis(lab2, -1, 0)
    c_bar7 = ((np.hypot(a1, b1) + np.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - np.sqrt(c_bar7 / (c_bar7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    chroma0 = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(chroma0, 0.0, dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    l_bar, c_barp = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_bar = np.where(chroma0, h_sum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(c_barp ** 7 / (c_barp ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_barp, 1 + 0.015 * c_barp * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h))


def ciede2000(out, gt):
    """{'ciede2000': (B,)}: the mean Delta E_00 of each image pair, RGB (B, 3, H, W) in [0, 1]."""
    if out.shape != gt.shape:
        raise ValueError(f"output {tuple(out.shape)} and target {tuple(gt.shape)} differ in shape")

    def lab(x):
        u8 = (x.detach().float().clamp(0, 1) * 255).round().cpu().numpy().astype(np.float64) / 255
        return rgb_to_lab(np.moveaxis(u8, 1, -1))
    scores = delta_e_2000(lab(out), lab(gt)).reshape(out.shape[0], -1).mean(1)
    return {"ciede2000": torch.from_numpy(scores)}
