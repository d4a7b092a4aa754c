"""Deraining sets as distributed.

Rain100L / Rain100H / Rain200L / Rain200H, one of five layouts:
    <root>/rain/X2/norain-<n>x2.png  with  <root>/norain/norain-<n>.png     JORDER / Rain200 archives
    <root>/rain-<n>.png              with  <root>/norain-<n>.png            one folder (RainTrainL, old Rain100L)
    <root>/rainy/rain-<n>.png        with  <root>/norain-<n>.png or <root>/norain/norain-<n>.png
    <root>/input/<n>.png             with  <root>/target/<n>.png            MPRNet / Restormer copies
    <root>/inputcrop/<n>.png         with  <root>/cleancrop/<n>.png         MSPFN's test sets (R100H/, R100L/)
DID-data (DID-MDN, Rain1200): JPEGs holding a pair side by side, rainy half on the left by default.
"""
import os
from typing import List, Optional, Union

import numpy as np

from hdm.image_io import image_header, images_in, read_image
from hdm.kinds import OneOf, check_arguments

from . import benchmarks
from .io import to_tensor
from .paired import PairedDataset, check_pairs, images_by_stem, numbered
from .transforms import paired_augment, paired_random_crop

RAIN_LAYOUT = ("<root>/rain/X2/norain-<n>x2.png with <root>/norain/norain-<n>.png, or <root>/rain-<n>.png with "
               "<root>/norain-<n>.png, or <root>/rainy/rain-<n>.png with <root>/[norain/]norain-<n>.png, or "
               "<root>/input/<n>.png with <root>/target/<n>.png, or <root>/inputcrop/<n>.png with "
               "<root>/cleancrop/<n>.png")
# folders of <n>.png pairs: (input folder, target folder, the split when the path names none: MSPFN ships
# inputcrop/ and cleancrop/ for its test sets only)
NUMBERED_FOLDERS = (("input", "target", None), ("inputcrop", "cleancrop", "test"))


def _sub(root, *parts):
    path = os.path.join(root, *parts)
    return path if os.path.isdir(path) else None


class Rain(PairedDataset):
    """Rain100L/H, Rain200L/H in any of the accepted layouts, paired by the number n.
    crop, augment, crop_gt_border, holdout, take, benchmark: see PairedDataset (a scene is a number)."""

    def __init__(self, root: str, crop: Optional[int] = None, augment=False, crop_gt_border=True, holdout=0,
                 take="rest", benchmark: Optional[str] = "auto"):
        check_arguments(Rain, locals())
        if not os.path.isdir(root):
            raise FileNotFoundError(f"root: {root}: no such folder; expected {RAIN_LAYOUT}")
        pair = next((folders for folders in NUMBERED_FOLDERS if _sub(root, folders[0]) and _sub(root, folders[1])),
                    None)
        self.split = pair[2] if pair else None  # MSPFN's folders: a test set whatever the path says
        if pair:
            lq_name, gt_name, _ = pair
            lq = numbered(images_by_stem(os.path.join(root, lq_name)), r"\D*(\d+)")
            gt = numbered(images_by_stem(os.path.join(root, gt_name)), r"\D*(\d+)")
            version = f"{lq_name}/ with {gt_name}/"
        else:
            gt_dir = _sub(root, "norain") or root
            gt = numbered(images_by_stem(gt_dir), r"norain-(\d+)")
            rain_dir = _sub(root, "rain", "X2") or _sub(root, "rain") or _sub(root, "rainy") or root
            # X2 archives name the rainy image after its target (norain-<n>x2); one folder holds both
            lq = numbered(images_by_stem(rain_dir), r"rain-(\d+)" if rain_dir == root else r"(?:no)?rain-(\d+)(?:x2)?")
            version = f"{os.path.relpath(rain_dir, root)}/ with {os.path.relpath(gt_dir, root)}/"
        samples, keys = check_pairs(root, lq, gt, RAIN_LAYOUT)
        self._setup(root, samples, keys, (len(lq), len(gt)), RAIN_LAYOUT, version, benchmark=benchmark,
                    recognised=benchmarks.guess("Rain", root, self.split), holdout=holdout, take=take, crop=crop,
                    augment=augment, crop_gt_border=crop_gt_border)


class SideBySide(PairedDataset):
    """Pairs stored as one image, halves side by side (DID-data). lq_side: 'left' or 'right'.
    root: a folder, or a list of folders (DID-MDN's training set spans Rain_Heavy, Rain_Medium, Rain_Light).
    crop, augment, holdout, take, benchmark: see PairedDataset; a scene is a file name, across the
    folders (the same number in each density folder is held out together)."""

    LIMITS = {**PairedDataset.LIMITS, "lq_side": OneOf(("left", "right"))}

    def __init__(self, root: Union[str, List[str]], lq_side="left", crop: Optional[int] = None, augment=False,
                 holdout=0, take="rest", benchmark: Optional[str] = "auto"):
        check_arguments(SideBySide, locals())
        self.lq_side = lq_side
        files = [path for folder in ([root] if isinstance(root, str) else root) for path in images_in(folder)]
        if not files:
            raise ValueError(f"root: {root}: expected images holding a rainy/clean pair side by side; found none")
        layout = "images holding a rainy/clean pair side by side (even width)"
        self._setup(root, [(path, path, None) for path in files],
                    [os.path.splitext(os.path.basename(p))[0] for p in files], (len(files), len(files)), layout,
                    f"side by side, {lq_side} half degraded", benchmark=benchmark,
                    recognised=benchmarks.guess("SideBySide", root), holdout=holdout, take=take, crop=crop,
                    augment=augment, crop_gt_border=False)

    def _check_sample(self, path, _gt, _trans):
        h, w, colour = image_header(path)
        problem = f"{path}: width {w} is odd; expected {self.layout}" if w % 2 else None
        return problem, 0, 2 * (not colour), (h, w // 2)

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
