"""Image-quality metrics as named presets (see README.md in this folder for each convention)."""
from .psnr_ssim import ffa_rgb, psnr_rgb, ssim_rgb

METRIC_PRESETS = {
    "ffa_rgb": ffa_rgb,
}


def get_metric(preset):
    """The metric function of a preset: f(out, gt) -> {name: (B,) tensor}."""
    if preset not in METRIC_PRESETS:
        raise KeyError(f"unknown metric preset {preset!r}; valid: {', '.join(METRIC_PRESETS)}")
    return METRIC_PRESETS[preset]


__all__ = ["METRIC_PRESETS", "get_metric", "ffa_rgb", "psnr_rgb", "ssim_rgb"]
