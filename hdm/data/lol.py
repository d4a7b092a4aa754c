"""LOL (Wei et al., BMVC 2018) and LOL-v2 (Yang et al., TIP 2021) as distributed.

    LOL/our485/{low,high}/<n>.png (485 training pairs), LOL/eval15/{low,high}/<n>.png (15 test pairs)
    LOL-v2/Real_captured/{Train,Test}/Low/low<n>.png with .../Normal/normal<n>.png   (689 / 100 pairs)
    LOL-v2/Synthetic/{Train,Test}/{Low,Normal}/<name>.png, equal names              (900 / 100 pairs)

`root` is the set's folder (LOL, LOL-v2/Real_captured or LOL-v2/Synthetic) and `split` chooses the
training or test part; `root` may also be one split folder holding the low and normal folders.
Pairs match by name, or by number when the names differ (low00001 / normal00001).
"""
import os
from typing import Optional

from hdm.kinds import OneOf, check_arguments

from . import benchmarks
from .paired import PairedDataset, check_pairs, images_by_stem, numbered

LAYOUT = ("<root>/our485/{low,high}/<n>.png and <root>/eval15/{low,high}/<n>.png (LOL), "
          "<root>/{Train,Test}/{Low,Normal}/ (LOL-v2 Real_captured or Synthetic), or a split folder holding them")
SPLITS = {"train": ("our485", "Train", "train"), "test": ("eval15", "Test", "test")}
LOW, HIGH = ("low", "Low"), ("high", "High", "Normal", "normal")


def _first(folder, names):
    return next((os.path.join(folder, n) for n in names if os.path.isdir(os.path.join(folder, n))), None)


class LOL(PairedDataset):
    """LOL or LOL-v2. split: 'train' or 'test'; when root holds the low/normal folders itself, the
    split is read from its path. crop, augment, crop_gt_border, holdout, take, benchmark: see
    PairedDataset (a scene is a pair)."""

    LIMITS = {**PairedDataset.LIMITS, "split": OneOf(tuple(SPLITS))}

    def __init__(self, root: str, split="train", crop: Optional[int] = None, augment=False, crop_gt_border=True,
                 holdout=0, take="rest", benchmark: Optional[str] = "auto"):
        check_arguments(LOL, locals())
        if _first(root, ("Real_captured",)) and _first(root, ("Synthetic",)):
            raise ValueError(f"root: {root}: holds both LOL-v2 sets; point root at {root}/Real_captured or {root}/Synthetic")
        if _first(root, LOW):
            folder, split = root, benchmarks.split_of(benchmarks.tokens(root))
        else:
            folder = _first(root, SPLITS[split]) or root
        low, high = _first(folder, LOW), _first(folder, HIGH)
        if not (low and high):
            found = sorted(os.listdir(root)) if os.path.isdir(root) else "no such folder"
            raise FileNotFoundError(f"root: {root}: expected {LAYOUT}; found {found}")
        lq, gt = images_by_stem(low), images_by_stem(high)
        if set(lq) != set(gt) and lq and gt:  # LOL-v2 real: low00001 / normal00001
            lq, gt = numbered(lq, r"\D*(\d+)"), numbered(gt, r"\D*(\d+)")
        samples, keys = check_pairs(folder, lq, gt, LAYOUT)
        words = benchmarks.tokens(folder)
        lol = any(w.startswith("lol") for w in words)  # LOL, LOLdataset, LOL-v2
        name = "LOL-v2-real" if "real" in words else "LOL-v2-synthetic" if "synthetic" in words else \
            "LOL" if lol and os.path.basename(low) == "low" else None
        self.split = split
        self._setup(root, samples, keys, (len(lq), len(gt)), LAYOUT,
                    f"{os.path.relpath(low, root)}/ with {os.path.relpath(high, root)}/", benchmark=benchmark,
                    recognised=f"{name}-{split}" if name and split else None, holdout=holdout, take=take,
                    crop=crop, augment=augment, crop_gt_border=crop_gt_border)
