import numpy as np
import pytest
import torch
from scipy.ndimage import correlate
from skimage import data

from hdm.metrics import ffa_rgb, get_metric, psnr_rgb, ssim_rgb


def ssim_zero_pad_numpy(x, y):
    """FFA-Net's SSIM written with scipy: Gaussian 11/1.5, zero padding, mean over map and channels."""
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2)).astype(np.float32)
    g = g / g.sum()
    win = np.outer(g, g)
    vals = []
    for c in range(x.shape[0]):
        f = lambda t: correlate(t.astype(np.float64), win, mode="constant", cval=0.0)  # noqa: E731
        mx, my = f(x[c]), f(y[c])
        sxx, syy, sxy = f(x[c] * x[c]) - mx ** 2, f(y[c] * y[c]) - my ** 2, f(x[c] * y[c]) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        vals.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_zero_padded_reference():
    gt = data.chelsea()[:64, :80].astype(np.float32).transpose(2, 0, 1) / 255
    out = np.clip(gt + np.random.default_rng(0).normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
    got = ssim_rgb(torch.from_numpy(out)[None], torch.from_numpy(gt)[None]).item()
    assert got == pytest.approx(ssim_zero_pad_numpy(out, gt), abs=1e-5)


def test_zero_padding_reads_higher_than_valid_ssim():
    from skimage.metrics import structural_similarity
    gt = data.chelsea()[:96, :96].astype(np.float32) / 255
    out = np.clip(gt + np.random.default_rng(1).normal(0, 0.08, gt.shape), 0, 1).astype(np.float32)
    ours = ssim_rgb(torch.from_numpy(out).permute(2, 0, 1)[None], torch.from_numpy(gt).permute(2, 0, 1)[None]).item()
    valid = structural_similarity(out, gt, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1.0)
    assert ours > valid


def test_psnr_formula_clamps_and_handles_identity():
    gt = torch.full((2, 3, 4, 4), 0.5)
    out = gt.clone()
    out[0] += 0.1
    out[1] = 2.0  # clamped to 1 -> error 0.5 everywhere
    p = psnr_rgb(out, gt)
    assert p[0].item() == pytest.approx(20.0, abs=1e-4) and p[1].item() == pytest.approx(20 * np.log10(2), abs=1e-6)
    assert psnr_rgb(gt, gt)[0].item() == 100.0
    assert ssim_rgb(gt, gt)[0].item() == pytest.approx(1.0)


def test_preset_table():
    out, gt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.equal(get_metric("ffa_rgb")(out, gt)["psnr"], ffa_rgb(out, gt)["psnr"])
    with pytest.raises(KeyError, match="ffa_rgb"):
        get_metric("matlab")
    with pytest.raises(ValueError, match="shape"):
        ffa_rgb(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
