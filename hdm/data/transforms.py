"""Paired training transforms: the same crop, flips and rotation for every image of a sample.

Randomness comes from torch's generator, so it is seeded with the run and saved in checkpoints.
"""
import numpy as np
import torch

from hdm.errors import shown


def paired_random_crop(images, size, path=""):
    """Crop the same size x size window from every (H, W, C) array in `images`."""
    h, w = images[0].shape[:2]
    for img in images[1:]:
        if img.shape[:2] != (h, w):
            raise ValueError(f"{shown(path)}: paired images differ in size: {(h, w)} vs {img.shape[:2]}")
    if h < size or w < size:
        raise ValueError(f"{shown(path)}: image {h}x{w} is smaller than the crop size {size}")
    top = int(torch.randint(0, h - size + 1, (1,)))
    left = int(torch.randint(0, w - size + 1, (1,)))
    return [img[top:top + size, left:left + size] for img in images]


def paired_augment(images):
    """Random horizontal flip, vertical flip and 90-degree rotation, shared by all images."""
    hflip, vflip, rot = (bool(torch.randint(0, 2, (1,))) for _ in range(3))
    out = []
    for img in images:
        if hflip:
            img = img[:, ::-1]
        if vflip:
            img = img[::-1]
        if rot:
            img = np.rot90(img)
        out.append(np.ascontiguousarray(img))
    return out
