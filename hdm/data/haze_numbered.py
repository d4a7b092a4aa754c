"""NH-HAZE (NTIRE 2020) and Dense-Haze (NTIRE 2019): numbered hazy / ground-truth pairs.

Accepted layouts (as the archives unpack):
    <root>/<nn>_hazy.png, <root>/<nn>_GT.png                      one folder
    <root>/hazy/<nn>[_hazy].png, <root>/{GT,gt,clear}/<nn>[_GT].png    two folders
Split by number: the common protocol trains on 01-50 and tests on 51-55 (both ranges configurable).
"""
import os
from typing import Optional

from hdm.kinds import OneOf, Ordered, Range, check_arguments

from . import benchmarks
from .paired import PairedDataset, check_pairs, images_by_stem, numbered

LAYOUT = ("<root>/<nn>_hazy.png with <root>/<nn>_GT.png, or <root>/hazy/<nn>[_hazy].png with "
          "<root>/GT/<nn>[_GT].png")
SPLITS = ("train", "test", "all")


class NumberedHaze(PairedDataset):
    """NH-HAZE / Dense-Haze. split: 'train' (numbers in train_range), 'test' (test_range) or 'all'.
    crop, augment, crop_gt_border, holdout, take, benchmark: see PairedDataset (a scene is a number)."""

    LIMITS = {**PairedDataset.LIMITS, "split": OneOf(SPLITS), "train_range": Ordered(Range(1)),
              "test_range": Ordered(Range(1))}  # [first, last] image numbers

    def __init__(self, root: str, split="train", train_range=(1, 50), test_range=(51, 55), crop: Optional[int] = None,
                 augment=False, crop_gt_border=True, holdout=0, take="rest", benchmark: Optional[str] = "auto"):
        check_arguments(NumberedHaze, locals())
        gt_dirs = [d for d in ("GT", "gt", "clear") if os.path.isdir(os.path.join(root, d))]
        if os.path.isdir(os.path.join(root, "hazy")) and gt_dirs:
            lq = numbered(images_by_stem(os.path.join(root, "hazy")), r"(\d+)(?:_hazy)?")
            gt = numbered(images_by_stem(os.path.join(root, gt_dirs[0])), r"(\d+)(?:_GT|_gt)?")
            version = f"hazy/ with {gt_dirs[0]}/"
        elif os.path.isdir(root):
            names = images_by_stem(root)
            lq, gt = numbered(names, r"(\d+)_hazy"), numbered(names, r"(\d+)_(?:GT|gt)")
            version = "one folder of <nn>_hazy / <nn>_GT"
        else:
            raise FileNotFoundError(f"root: {root}: no such folder; expected {LAYOUT}")
        lo, hi = {"train": train_range, "test": test_range, "all": (0, 10 ** 9)}[split]
        keep = lambda d: {k: v for k, v in d.items() if lo <= k <= hi}  # noqa: E731
        samples, keys = check_pairs(root, keep(lq), keep(gt), f"{LAYOUT} (split {split}: numbers {lo}-{hi})")
        self.split = "test" if split == "all" else split  # 'all' includes the test numbers
        self._setup(root, samples, keys, (len(lq), len(gt)), LAYOUT, version, benchmark=benchmark,
                    recognised=benchmarks.guess("NumberedHaze", root), holdout=holdout, take=take, crop=crop,
                    augment=augment, crop_gt_border=crop_gt_border)
