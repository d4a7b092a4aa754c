"""Paired image folders: degraded inputs and targets matched by file name."""
import os

from torch.utils.data import Dataset

from .io import is_image, read_image, to_tensor
from .transforms import paired_augment, paired_random_crop


class PairedFolder(Dataset):
    """`lq_dir/<name>.<ext>` paired with `gt_dir/<name>.<ext'>` (same stem; extensions may differ).

    Args:
        lq_dir, gt_dir: folders of degraded and target images.
        crop: training crop size (None: whole images).
        augment: random flips and 90-degree rotation (training).
    Returns dicts {'lq', 'gt': (3, H, W) float in [0, 1], 'lq_path', 'gt_path'}.
    """

    def __init__(self, lq_dir, gt_dir, crop=None, augment=False):
        self.crop, self.augment = crop, augment
        for folder in (lq_dir, gt_dir):
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"{folder}: no such folder (expected a folder of images)")
        lq = {os.path.splitext(n)[0]: os.path.join(lq_dir, n) for n in sorted(os.listdir(lq_dir)) if is_image(n)}
        gt = {os.path.splitext(n)[0]: os.path.join(gt_dir, n) for n in sorted(os.listdir(gt_dir)) if is_image(n)}
        unpaired = sorted(set(lq) ^ set(gt))
        if not lq or unpaired:
            raise ValueError(f"{lq_dir} and {gt_dir}: expected images with the same names in both; "
                             f"found {len(lq)} and {len(gt)} images, unpaired: {unpaired[:5]}")
        self.pairs = [(lq[k], gt[k]) for k in sorted(lq)]

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        lq_path, gt_path = self.pairs[index]
        lq, gt = read_image(lq_path), read_image(gt_path)
        if lq.shape != gt.shape:
            raise ValueError(f"{lq_path}: size {lq.shape[:2]} differs from its target {gt_path} {gt.shape[:2]}")
        images = [lq, gt]
        if self.crop:
            images = paired_random_crop(images, self.crop, lq_path)
        if self.augment:
            images = paired_augment(images)
        return {"lq": to_tensor(images[0]), "gt": to_tensor(images[1]), "lq_path": lq_path, "gt_path": gt_path}
