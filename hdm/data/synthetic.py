"""Degraded inputs synthesised on the fly from a folder of clean images.

`DarkenedFolder`: the low-light protocol of Ren et al. (TIP 2019): lq = clip(gt^gamma + n), gamma drawn
from `gamma` (a [low, high] range) and n Gaussian with sigma drawn from `noise`. Training uses
gamma in (2, 4) and small noise; the paper's Table II test uses gamma = 3 and 1 % noise
(`gamma: [3, 3], noise: [0.01, 0.01]`). With `seed` set, each image's draw depends only on
(seed, index), so a test set is the same on every run; without it draws come from torch's global
generator (seeded by the run, saved in checkpoints).
"""
from typing import Optional

import torch

from hdm.image_io import images_in, read_image
from hdm.kinds import Ordered, Range, check_arguments

from .io import to_tensor
from .transforms import paired_augment, paired_random_crop
from .unpaired import ImageFolder


class DarkenedFolder(ImageFolder):
    """Clean images from `root`, darkened on the fly. holdout, take: see PairedDataset (a scene is an
    image). Returns {'lq', 'gt', 'lq_path', 'gt_path'}."""

    # an exponent above 100 leaves all but the brightest pixels black (0.9^100 < 3e-5); noise: sigmas on [0, 1] images
    LIMITS = {**ImageFolder.LIMITS, "gamma": Ordered(Range(0, 100, low_open=True)), "noise": Ordered(Range(0, 1)),
              "seed": Range(0)}

    def __init__(self, root: str, gamma=(2.0, 4.0), noise=(0.0, 0.02), seed: Optional[int] = None,
                 crop: Optional[int] = None, augment=False, holdout=0, take="rest"):
        check_arguments(DarkenedFolder, locals())
        files = images_in(root)
        if not files:
            raise ValueError(f"root: {root}: expected a folder of clean images to darken; found none")
        self.gamma, self.noise, self.seed = gamma, noise, seed
        self._setup(root, [(f, f, None) for f in files], files, (len(files), len(files)), "a folder of clean images",
                    "one folder, darkened on the fly", benchmark=None, recognised=None, holdout=holdout, take=take,
                    crop=crop, augment=augment, crop_gt_border=False)

    def __getitem__(self, index):
        path = self.samples[index][0]
        gt = read_image(path)
        if self.crop:
            (gt,) = paired_random_crop([gt], self.crop, path)
        if self.augment:
            (gt,) = paired_augment([gt])
        gen = torch.Generator().manual_seed(self.seed + index) if self.seed is not None else None
        u = torch.rand(2, generator=gen, dtype=torch.float64)
        gamma = self.gamma[0] + (self.gamma[1] - self.gamma[0]) * float(u[0])
        sigma = self.noise[0] + (self.noise[1] - self.noise[0]) * float(u[1])
        gt_t = to_tensor(gt)
        lq = (gt_t ** gamma + sigma * torch.randn(gt_t.shape, generator=gen)).clamp(0, 1)
        return {"lq": lq, "gt": gt_t, "lq_path": path, "gt_path": path}
