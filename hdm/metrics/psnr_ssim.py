"""PSNR / SSIM as the FFA-Net, AECR-Net and HDM test scripts compute them (preset `ffa_rgb`).

- Inputs: RGB float tensors (B, 3, H, W), clamped to [0, 1]; nothing is quantised to uint8.
- PSNR = 20 log10(1 / RMSE), RMSE over all pixels and the three channels of one image (100 dB when
  the images are identical, as FFA-Net's `psnr`).
- SSIM: an 11 x 11 Gaussian window (sigma 1.5, built in float32), applied per channel with zero
  'same' padding (padding 5), C1 = 0.01^2, C2 = 0.03^2, mean over the whole map and the channels.
  The zero padding biases SSIM upwards against MATLAB's 'valid' SSIM by several thousandths.
Values are per image; a table's figure is the mean over images.
"""

import torch
import torch.nn.functional as F


def gaussian_window(size=11, sigma=1.5):
    """(size, size) float32 Gaussian, normalised to sum 1."""
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def psnr_rgb(out, gt):
    """Per-image PSNR (B,) of clamped RGB tensors in [0, 1]."""
    diff = out.clamp(0, 1).double() - gt.clamp(0, 1).double()
    rmse = diff.pow(2).flatten(1).mean(dim=1).sqrt()
    return torch.where(rmse == 0, torch.full_like(rmse, 100.0), 20 * torch.log10(1.0 / rmse))


def ssim_rgb(out, gt, window_size=11, sigma=1.5):
    """Per-image SSIM (B,) with FFA-Net's zero-padded Gaussian window."""
    x, y = out.clamp(0, 1).float(), gt.clamp(0, 1).float()
    c = x.shape[1]
    win = gaussian_window(window_size, sigma).to(x.device).expand(c, 1, window_size, window_size)
    pad = window_size // 2
    blur = lambda t: F.conv2d(t, win, padding=pad, groups=c)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return ssim_map.flatten(1).mean(dim=1).double()


def ffa_rgb(out, gt):
    """The FFA/AECR-Net/HDM protocol: {'psnr': (B,), 'ssim': (B,)} on RGB in [0, 1]."""
    if out.shape != gt.shape:
        raise ValueError(f"output {tuple(out.shape)} and target {tuple(gt.shape)} differ in shape")
    return {"psnr": psnr_rgb(out, gt), "ssim": ssim_rgb(out, gt)}


