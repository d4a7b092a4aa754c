"""LOL (Wei et al., BMVC 2018) as distributed: <root>/our485/{low,high}/<n>.png (485 training pairs)
and <root>/eval15/{low,high}/<n>.png (15 test pairs). `root` may also be one split folder holding
low/ and high/ directly."""
import os

from .paired import PairedDataset, check_pairs, images_by_stem

LAYOUT = "<root>/our485/{low,high}/<n>.png and <root>/eval15/{low,high}/<n>.png (or <root>/{low,high}/<n>.png)"
SPLITS = {"train": "our485", "test": "eval15"}


class LOL(PairedDataset):
    """LOL. split: 'train' (our485) or 'test' (eval15); ignored when root holds low/ and high/ itself."""

    def __init__(self, root, split="train", crop=None, augment=False):
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        self.crop, self.augment = crop, augment
        folder = root if os.path.isdir(os.path.join(root, "low")) else os.path.join(root, SPLITS[split])
        if not (os.path.isdir(os.path.join(folder, "low")) and os.path.isdir(os.path.join(folder, "high"))):
            found = sorted(os.listdir(root)) if os.path.isdir(root) else "no such folder"
            raise FileNotFoundError(f"{root}: expected {LAYOUT}; found {found}")
        lq, gt = images_by_stem(os.path.join(folder, "low")), images_by_stem(os.path.join(folder, "high"))
        self.samples = check_pairs(folder, lq, gt, LAYOUT)
