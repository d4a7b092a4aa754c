"""Paired image folders: degraded inputs and targets matched by file name."""
import os
import re

from torch.utils.data import Dataset

from .io import images_in, read_gray, read_image, to_tensor
from .transforms import paired_augment, paired_random_crop


def images_by_stem(folder):
    """{file name without extension: path} of the images in a folder."""
    return {os.path.splitext(os.path.basename(p))[0]: p for p in images_in(folder)}


def load_sample(lq_path, gt_path, trans_path=None, crop=None, augment=False):
    """Read one pair (and its transmission map), apply the shared crop/augmentation, return the dict."""
    lq, gt = read_image(lq_path), read_image(gt_path)
    if lq.shape != gt.shape:
        raise ValueError(f"{lq_path}: size {lq.shape[:2]} differs from its target {gt_path} {gt.shape[:2]}")
    images = [lq, gt] + ([read_gray(trans_path)] if trans_path else [])
    if crop:
        images = paired_random_crop(images, crop, lq_path)
    if augment:
        images = paired_augment(images)
    sample = {"lq": to_tensor(images[0]), "gt": to_tensor(images[1]), "lq_path": lq_path, "gt_path": gt_path}
    if trans_path:
        sample["trans"] = to_tensor(images[2])
    return sample


class PairedDataset(Dataset):
    """Base of the paired readers: `self.samples` holds (lq_path, gt_path, trans_path or None) tuples,
    built by name by the subclass; loading, crop and augmentation are shared."""

    samples = ()
    crop, augment = None, False

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return load_sample(*self.samples[index], crop=self.crop, augment=self.augment)


def numbered(names, pattern):
    """{number: path} for the files whose name matches `pattern` (a regex with one group of digits)."""
    out = {}
    for name, path in names.items():
        m = re.fullmatch(pattern, name)
        if m:
            out[int(m.group(1))] = path
    return out


def check_pairs(root, lq, gt, layout):
    """Pairs of two {key: path} dicts, sorted by key; one clear error naming the layout otherwise."""
    missing_gt, missing_lq = sorted(set(lq) - set(gt)), sorted(set(gt) - set(lq))
    if not lq or missing_gt or missing_lq:
        raise ValueError(f"{root}: expected {layout}; found {len(lq)} inputs and {len(gt)} targets"
                         f"{f', inputs without target: {missing_gt[:5]}' if missing_gt else ''}"
                         f"{f', targets without input: {missing_lq[:5]}' if missing_lq else ''}")
    return [(lq[k], gt[k], None) for k in sorted(lq)]


class PairedFolder(PairedDataset):
    """`lq_dir/<name>.<ext>` paired with `gt_dir/<name>.<ext'>` (same stem; extensions may differ).

    Args:
        lq_dir, gt_dir: folders of degraded and target images.
        trans_dir: optional folder of transmission maps with the same names (grey images), returned
            as 'trans' (1, H, W) for depth-binned region masks.
        crop: training crop size (None: whole images).
        augment: random flips and 90-degree rotation (training).
    Returns dicts {'lq', 'gt': (3, H, W) float in [0, 1], 'lq_path', 'gt_path'[, 'trans']}.
    """

    def __init__(self, lq_dir, gt_dir, trans_dir=None, crop=None, augment=False):
        self.crop, self.augment = crop, augment
        lq, gt = images_by_stem(lq_dir), images_by_stem(gt_dir)
        trans = images_by_stem(trans_dir) if trans_dir else None
        unpaired = sorted(set(lq) ^ set(gt))
        if not lq or unpaired:
            raise ValueError(f"{lq_dir} and {gt_dir}: expected images with the same names in both; "
                             f"found {len(lq)} and {len(gt)} images, unpaired: {unpaired[:5]}")
        if trans is not None and set(trans) != set(lq):
            raise ValueError(f"{trans_dir}: expected one transmission map per input of {lq_dir}; "
                             f"missing: {sorted(set(lq) - set(trans))[:5]}")
        self.samples = [(lq[k], gt[k], trans[k] if trans else None) for k in sorted(lq)]
