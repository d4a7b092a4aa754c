"""Deraining sets as distributed.

Rain100L / Rain100H / Rain200L / Rain200H, one of three layouts:
    <root>/rain/X2/norain-<n>x2.png  with  <root>/norain/norain-<n>.png     JORDER / Rain200 archives
    <root>/rain-<n>.png              with  <root>/norain-<n>.png            one folder (RainTrainL, old Rain100L)
    <root>/rainy/rain-<n>.png        with  <root>/norain-<n>.png or <root>/norain/norain-<n>.png
DID-data (DID-MDN, Rain1200): JPEGs holding a pair side by side, rainy half on the left by default.
"""
import os

import numpy as np

from .io import images_in, read_image, to_tensor
from .paired import PairedDataset, check_pairs, images_by_stem, numbered
from .transforms import paired_augment, paired_random_crop

RAIN_LAYOUT = ("<root>/rain/X2/norain-<n>x2.png with <root>/norain/norain-<n>.png, or <root>/rain-<n>.png with "
               "<root>/norain-<n>.png, or <root>/rainy/rain-<n>.png with <root>/[norain/]norain-<n>.png")


def _sub(root, *parts):
    path = os.path.join(root, *parts)
    return path if os.path.isdir(path) else None


class Rain(PairedDataset):
    """Rain100L/H, Rain200L/H in any of the accepted layouts, paired by the number n."""

    def __init__(self, root, crop=None, augment=False):
        self.crop, self.augment = crop, augment
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root}: no such folder; expected {RAIN_LAYOUT}")
        gt_dir = _sub(root, "norain") or root
        gt = numbered(images_by_stem(gt_dir), r"norain-(\d+)")
        rain_dir = _sub(root, "rain", "X2") or _sub(root, "rain")
        if rain_dir:
            lq = numbered(images_by_stem(rain_dir), r"(?:no)?rain-(\d+)(?:x2)?")
        elif _sub(root, "rainy"):
            lq = numbered(images_by_stem(os.path.join(root, "rainy")), r"rain-(\d+)")
        else:
            lq = numbered(images_by_stem(root), r"rain-(\d+)")
        self.samples = check_pairs(root, lq, gt, RAIN_LAYOUT)


class SideBySide(PairedDataset):
    """Pairs stored as one image, halves side by side (DID-data). lq_side: 'left' or 'right'.
    root: a folder, or a list of folders (DID-MDN's training set spans Rain_Heavy, Rain_Medium, Rain_Light)."""

    def __init__(self, root, lq_side="left", crop=None, augment=False):
        if lq_side not in ("left", "right"):
            raise ValueError(f"lq_side {lq_side!r} is not 'left' or 'right'")
        self.lq_side, self.crop, self.augment = lq_side, crop, augment
        files = [path for folder in ([root] if isinstance(root, str) else root) for path in images_in(folder)]
        if not files:
            raise ValueError(f"{root}: expected images holding a rainy/clean pair side by side; found none")
        self.samples = [(path, path, None) for path in files]

    def __getitem__(self, index):
        path = self.samples[index][0]
        img = read_image(path)
        w = img.shape[1]
        if w % 2:
            raise ValueError(f"{path}: width {w} is odd; expected two halves side by side")
        left, right = img[:, : w // 2], img[:, w // 2:]
        images = [left, right] if self.lq_side == "left" else [right, left]
        if self.crop:
            images = paired_random_crop(images, self.crop, path)
        if self.augment:
            images = paired_augment(images)
        return {"lq": to_tensor(np.ascontiguousarray(images[0])), "gt": to_tensor(np.ascontiguousarray(images[1])),
                "lq_path": path, "gt_path": path}
