"""Classical dehazing baselines as parameter-free models, on the same operators as HDM's region masks.

- `DCP`: He, Sun, Tang, "Single Image Haze Removal Using Dark Channel Prior", CVPR 2009 / TPAMI 2011,
  with the guided-filter refinement of He et al. ECCV 2010 in place of soft matting.
- `PFDCP`: "Pyramid Fusion Dark Channel Prior for Single Image Dehazing": DCP on an image pyramid,
  transmission maps fused coarse to fine.

Both take RGB (B, 3, H, W) in [0, 1] on any device and return the recovered image, clamped to [0, 1].
`maps(lq)` returns the dark channel and the refined transmission for figures (`predict.py --save-maps`).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.kinds import Range, check_arguments
from hdm.ops.dcp import atmospheric_light_top, dark_channel, grey, guided_filter, transmission

# The longest side an exported PF-DCP graph takes (its pyramid has every level such an image can have).
EXPORT_MAX_SIDE = 32768


def recover(img, atmosphere, t, t0):
    """J = (I - A) / max(t, t0) + A, clamped to [0, 1]. atmosphere: (B, 3); t: (B, 1, H, W)."""
    a = atmosphere.view(-1, 3, 1, 1)
    return ((img - a) / t.clamp_min(t0) + a).clamp(0, 1)


def _if_present(present, level, value, otherwise):
    """value, or in an exported graph (present: PFDCP.pyramid_any_size's flags) value where the image
    has pyramid level `level` and otherwise where it has not."""
    return value if present is None else torch.where(present[level - 1], value, otherwise)


class DCP(nn.Module):
    """Dark channel prior dehazing.

    Args:
        patch: dark-channel window (15); omega: haze kept for depth perception (0.95);
        top: fraction of the brightest dark-channel pixels searched for A (0.001);
        radius, eps: guided-filter refinement, window 2 radius + 1, guide = grey input, He et al.'s
            border (window clipped to the image); t0: lower bound of t in the recovery (0.1).
    """

    extra_inputs = ()
    # limits of the arguments (hdm.kinds): the windows pad the image by their size, so beyond 4096 pixels
    # only memory grows; the recovery divides by max(t, t0) and the guided filter by (variance + eps)
    LIMITS = {"patch": Range(1, 4096), "omega": Range(0, 1), "top": Range(0, 1, low_open=True),
              "radius": Range(0, 4096), "eps": Range(0, 1, low_open=True), "t0": Range(0, 1, low_open=True)}

    def __init__(self, patch=15, omega=0.95, top=0.001, radius=60, eps=1e-4, t0=0.1):
        check_arguments(DCP, locals())
        super().__init__()
        self.patch, self.omega, self.top, self.radius, self.eps, self.t0 = patch, omega, top, radius, eps, t0

    def _check(self, lq):
        if lq.dim() != 4 or lq.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects an RGB batch (B, 3, H, W), got shape {tuple(lq.shape)}")

    def atmosphere(self, img):
        return atmospheric_light_top(img, dark_channel(img, self.patch), self.top)

    def refined_transmission(self, img, atmosphere):
        t = transmission(img, atmosphere, self.patch, self.omega)
        return guided_filter(grey(img), t, 2 * self.radius + 1, self.eps, border="clip")

    def maps(self, lq):
        """{'dark_channel', 'transmission'}: (B, 1, H, W) maps in [0, 1]."""
        self._check(lq)
        return {"dark_channel": dark_channel(lq, self.patch),
                "transmission": self.refined_transmission(lq, self.atmosphere(lq)).clamp(0, 1)}

    def forward(self, lq):
        self._check(lq)
        a = self.atmosphere(lq)
        return recover(lq, a, self.refined_transmission(lq, a), self.t0)


class PFDCP(DCP):
    """Pyramid fusion DCP.

    The pyramid drops every other row and column while both sides stay at least `patch` (or up to
    `max_levels`). A is estimated on every level with He et al.'s rule and the brightest estimate
    (largest mean over RGB) is kept. Each level's transmission (with that A) is refined by the guided
    filter; from the coarsest level down, the map is upsampled (nearest) and blended with the next
    finer one: t = weight * up(t_coarse) + (1 - weight) * t_fine. The fused full-size map is refined
    once more, then J is recovered with the lower bound t0. With one level there is no fusion and
    PF-DCP is DCP.

    Args (besides DCP's): weight: the coarser map's share in each fusion (the paper picks it on
        RESIDE's training sets, separately for indoor and outdoor: scripts/tune_pfdcp.py);
        max_levels: cap on the pyramid depth (None: as deep as the patch allows).
    """

    # the pyramid halves an image while a level still holds a patch: a 1-pixel patch never stops it
    LIMITS = {**DCP.LIMITS, "patch": Range(2, 4096), "weight": Range(0, 1), "max_levels": Range(1)}

    def __init__(self, patch=15, omega=0.95, top=0.001, radius=60, eps=1e-4, t0=0.1, weight=0.5,
                 max_levels: Optional[int] = None):
        check_arguments(PFDCP, locals())
        super().__init__(patch, omega, top, radius, eps, t0)
        self.weight, self.max_levels = weight, max_levels

    def pyramid(self, img):
        levels = [img]
        while (min(levels[-1].shape[-2:]) + 1) // 2 >= self.patch and (self.max_levels is None or len(levels) < self.max_levels):
            levels.append(levels[-1][..., ::2, ::2])
        return levels

    def pyramid_any_size(self, img):
        """The pyramid as one graph for every size (hdm.export): its depth depends on the size, so these
        are every level an image of up to EXPORT_MAX_SIDE pixels can have, with, for each level from
        the second on, a boolean tensor saying whether this image has it (both sides >= patch; each
        level's side is ceil(previous / 2)). Absent levels are then left out by `where`."""
        depth = 1
        while self.patch * 2 ** depth <= EXPORT_MAX_SIDE and (self.max_levels is None or depth < self.max_levels):
            depth += 1
        levels = [img[..., ::2 ** k, ::2 ** k] for k in range(depth)]
        return levels, [torch.scalar_tensor(torch.sym_min(*level.shape[-2:])) >= self.patch for level in levels[1:]]

    def fused_transmission(self, lq):
        levels, present = self.pyramid_any_size(lq) if torch.compiler.is_exporting() else (self.pyramid(lq), None)
        estimates = torch.stack([self.atmosphere(level) for level in levels])  # (L, B, 3)
        brightness = estimates.mean(dim=2)  # (L, B)
        if present is not None:
            brightness = torch.cat([brightness[:1], torch.where(torch.stack(present).unsqueeze(1), brightness[1:], -math.inf)])
        a = estimates[brightness.argmax(dim=0), torch.arange(lq.shape[0], device=lq.device)]
        maps = [self.refined_transmission(level, a) for level in levels]
        if len(maps) == 1:
            return a, maps[0]
        t = maps[-1]
        for k in range(len(maps) - 2, -1, -1):
            fused = self.weight * F.interpolate(t, size=maps[k].shape[-2:], mode="nearest") + (1 - self.weight) * maps[k]
            t = _if_present(present, k + 1, fused, maps[k])
        return a, _if_present(present, 1, guided_filter(grey(lq), t, 2 * self.radius + 1, self.eps, border="clip"), maps[0])

    def maps(self, lq):
        self._check(lq)
        return {"dark_channel": dark_channel(lq, self.patch), "transmission": self.fused_transmission(lq)[1].clamp(0, 1)}

    def forward(self, lq):
        self._check(lq)
        a, t = self.fused_transmission(lq)
        return recover(lq, a, t, self.t0)
