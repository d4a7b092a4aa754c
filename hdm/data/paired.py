"""Paired image folders: degraded inputs and targets matched by file name."""
import os

from torch.utils.data import Dataset

from .io import is_image, read_gray, read_image, to_tensor
from .transforms import paired_augment, paired_random_crop


def _images_by_stem(folder):
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder (expected a folder of images)")
    return {os.path.splitext(n)[0]: os.path.join(folder, n) for n in sorted(os.listdir(folder)) if is_image(n)}


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


class PairedFolder(Dataset):
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
        lq, gt = _images_by_stem(lq_dir), _images_by_stem(gt_dir)
        trans = _images_by_stem(trans_dir) if trans_dir else None
        unpaired = sorted(set(lq) ^ set(gt))
        if not lq or unpaired:
            raise ValueError(f"{lq_dir} and {gt_dir}: expected images with the same names in both; "
                             f"found {len(lq)} and {len(gt)} images, unpaired: {unpaired[:5]}")
        if trans is not None and set(trans) != set(lq):
            raise ValueError(f"{trans_dir}: expected one transmission map per input of {lq_dir}; "
                             f"missing: {sorted(set(lq) - set(trans))[:5]}")
        self.samples = [(lq[k], gt[k], trans[k] if trans else None) for k in sorted(lq)]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return load_sample(*self.samples[index], crop=self.crop, augment=self.augment)
