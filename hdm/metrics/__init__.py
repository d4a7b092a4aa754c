"""Image-quality metrics as named presets (README.md in this folder gives each one's convention).

A preset is f(out, gt, **options) -> {metric name: (B,) tensor}; inputs are RGB (B, 3, H, W) in [0, 1].
"""
import functools
import inspect
import warnings

import numpy as np
import torch

from hdm.kinds import PATH, Keywords, OneOf, Range, check_value

from .color import ciede2000
from .loe import loe
from .lpips import lpips
from .niqe import BLOCK as NIQE_BLOCK
from .niqe import niqe
from .psnr_ssim import ffa_rgb, psnr_rgb, ssim_rgb
from .reference import basicsr, lol_rgb, matlab_y_double, matlab_y_uint8

METRIC_PRESETS = {
    "ffa_rgb": ffa_rgb,                  # FFA-Net / AECR-Net / HDM metrics.py (RGB float)
    "matlab_y_uint8": matlab_y_uint8,    # Restormer / MPRNet evaluate_PSNR_SSIM.m
    "matlab_y_double": matlab_y_double,  # PReNet / RCDNet (unrounded Y)
    "basicsr": basicsr,                  # BasicSR calculate_psnr / calculate_ssim (options: y, crop_border)
    "lol_rgb": lol_rgb,                  # LOL, uint8 RGB, + MSE in HSV (option: gt_mean)
    "niqe": niqe,                        # no reference (option: convert = gray | y)
    "ciede2000": ciede2000,              # NTIRE dehazing, NH-HAZE / Dense-HAZE papers: mean Delta E_00, lower is better
    "loe": loe,                          # lightness order error against the input (Wang et al. TIP 2013), lower is better
    "lpips": lpips,                      # LPIPS v0.1 (Zhang et al. 2018), local weight files (options), lower is better
}
NO_REFERENCE = {"niqe", "loe"}  # no target needed
SCORES = {  # what each preset gives, in its rows' order (the tables that need PSNR and SSIM check it first)
    "ffa_rgb": ("psnr", "ssim"), "matlab_y_uint8": ("psnr", "ssim"), "matlab_y_double": ("psnr", "ssim"),
    "basicsr": ("psnr", "ssim"), "lol_rgb": ("psnr", "ssim", "mse_h", "mse_s", "mse_v", "mse_hsv"), "niqe": ("niqe",),
    "ciede2000": ("ciede2000",), "loe": ("loe",), "lpips": ("lpips",),
}
# the least height and width a preset scores, before the border its options crop (least_side): the 11 x 11
# 'valid' SSIM window of the MATLAB and BasicSR protocols, one NIQE block, AlexNet's strides and poolings
# (LPIPS; VGG16: 16). FFA's zero-padded SSIM, CIEDE2000 and LOE score any size. The tools check it from
# the images' headers before any work.
MIN_SIDE = {"matlab_y_uint8": 11, "matlab_y_double": 11, "basicsr": 11, "lol_rgb": 11, "niqe": NIQE_BLOCK,
            "lpips": 31}
LPIPS_VGG_MIN_SIDE = 16
# the limits of the presets' options (their kinds are their defaults'; hdm.kinds): a border of more than 64
# pixels is no convention (BasicSR crops the scale, at most 8); the choices the presets take
basicsr.LIMITS = {"crop_border": Range(0, 64)}
niqe.LIMITS = {"convert": OneOf(("gray", "y"))}
lpips.LIMITS = {"net": OneOf(("alex", "vgg")), "backbone_path": PATH, "lin_path": PATH}


def preset_options(preset):
    """Names of the options a preset accepts."""
    return [p for p in inspect.signature(METRIC_PRESETS[preset]).parameters if p not in ("out", "gt", "lq")]


def least_side(preset, options=None):
    """The least height and width of the images `preset` scores with `options` (MIN_SIDE, plus
    basicsr's crop_border on each side)."""
    options = options or {}
    if preset == "lpips" and options.get("net") == "vgg":
        return LPIPS_VGG_MIN_SIDE
    return MIN_SIDE.get(preset, 1) + 2 * options.get("crop_border", 0)


def get_metric(preset, **options):
    """The metric function of a preset with its options bound: f(out, gt, lq=None) -> {name: (B,) tensor};
    lq (the degraded input) reaches the presets that compare with it (loe)."""
    if preset not in METRIC_PRESETS:
        raise KeyError(f"unknown metric preset {preset!r}; valid: {', '.join(METRIC_PRESETS)}")
    unknown = sorted(set(options) - set(preset_options(preset)))
    if unknown:
        raise ValueError(f"metric preset {preset} has no option {unknown}; valid: {preset_options(preset) or 'none'}")
    check_value(options, dict, Keywords(METRIC_PRESETS[preset], ("out", "gt", "lq")), f"{preset} options")
    if hasattr(METRIC_PRESETS[preset], "prepare"):  # e.g. lpips loads its weight files here
        METRIC_PRESETS[preset].prepare(**options)
    fn = functools.partial(METRIC_PRESETS[preset], **options)
    takes_lq = "lq" in inspect.signature(METRIC_PRESETS[preset]).parameters
    least = least_side(preset, options)

    def metric(out, gt=None, lq=None):
        """Scores in float32 or float64 outside any autocast region, whatever the model ran in (a bf16 or
        fp16 output is converted first), of at least least_side pixels each way. NumPy's warnings about
        degenerate inputs are silenced; a preset that cannot score an image (NIQE on an image without
        structure, say), or scores it NaN, raises ValueError saying so."""
        out, gt, lq = (_full_precision(t) for t in (out, gt, lq))
        if min(out.shape[-2:]) < least:
            raise ValueError(f"{preset} scores images of at least {least} x {least} pixels, got "
                             f"{out.shape[-1]}x{out.shape[-2]}")
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings(), torch.autocast(out.device.type, enabled=False):
                warnings.simplefilter("ignore", RuntimeWarning)
                scores = fn(out, gt, lq=lq) if takes_lq else fn(out, gt)
        except (np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError) as err:
            raise ValueError(f"{preset} cannot score it ({type(err).__name__}: {err})") from err
        undefined = [name for name, value in scores.items() if bool(value.isnan().any())]
        if undefined:  # never a nan in a table (an infinite PSNR is a perfect image, and stays)
            raise ValueError(f"{preset} gives no {', '.join(undefined)} for it (NaN: an image without the structure "
                             f"the metric needs)")
        return scores
    return metric


def _full_precision(t):
    """A tensor of a floating type narrower than float32 as float32 (None and other tensors as they are)."""
    return t.float() if t is not None and t.is_floating_point() and t.dtype not in (torch.float32, torch.float64) else t


def get_metrics(presets):
    """Several presets scored in one pass: presets {name: options} -> f(out, gt) -> {'<preset>.<metric>':
    (B,) tensor} (the plain metric names when there is one preset)."""
    metrics = {name: get_metric(name, **options) for name, options in presets.items()}
    if len(metrics) == 1:
        return next(iter(metrics.values()))

    def score(out, gt=None, lq=None):
        return {f"{name}.{key}": value for name, metric in metrics.items() for key, value in metric(out, gt, lq).items()}
    return score


__all__ = ["METRIC_PRESETS", "get_metrics", "NO_REFERENCE", "MIN_SIDE", "SCORES", "least_side",
           "get_metric", "preset_options", "ffa_rgb", "psnr_rgb", "ssim_rgb",
           "matlab_y_uint8", "matlab_y_double", "basicsr", "lol_rgb", "niqe", "ciede2000", "loe", "lpips"]
