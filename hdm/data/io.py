"""Image files <-> RGB float arrays in [0, 1]."""
import os

import cv2
import numpy as np
import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def images_in(folder):
    """Sorted paths of the image files directly in `folder` (a clear error if it is missing)."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder (expected a folder of images)")
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if is_image(n)]


def read_image(path):
    """RGB float32 (H, W, 3) in [0, 1]; a clear error for unreadable files."""
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"{path}: not a readable image")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return img.astype(np.float32) / scale


def read_gray(path):
    """Single-channel float32 (H, W, 1) in [0, 1] (e.g. a transmission map)."""
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"{path}: not a readable image")
    if img.ndim == 3:
        img = img[..., 0] if img.shape[2] < 3 else cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return (img.astype(np.float32) / scale)[..., None]


def to_uint8(img):
    """(H, W, 3) float in [0, 1] (array or tensor) -> uint8, rounded."""
    if torch.is_tensor(img):
        img = img.detach().cpu().numpy()
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def write_image(path, img):
    """Write an RGB (H, W, 3) or grey (H, W) image, float in [0, 1] or uint8, atomically (temp + rename)."""
    path = os.fspath(path)
    if img.dtype != np.uint8:
        img = to_uint8(img)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ext = os.path.splitext(path)[1] or ".png"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)
    if not ok:
        raise OSError(f"{path}: could not encode image as {ext}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)


def to_tensor(img):
    """(H, W, C) array -> (C, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
