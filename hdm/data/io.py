"""Image files as torch tensors; the arrays, headers and writing are hdm.image_io (no torch there)."""
import numpy as np
import torch

from hdm.image_io import read_rgb


def read_image_tensor(path):
    """(3, H, W) tensor: uint8 for 8-bit images (converted by the tile that needs it, see
    hdm.inference.restore), else float32 in [0, 1] as read_image."""
    return torch.from_numpy(read_rgb(path)).permute(2, 0, 1).contiguous()


def to_tensor(img):
    """(H, W, C) array -> (C, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
