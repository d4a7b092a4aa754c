"""Per-image NumPy / OpenCV / PIL implementation of the HDM release's DCP mask procedure.

Written from the procedure's description (SPEC section 1) to serve as the parity reference for the
batched torch version in hdm.ops.dcp. It works the way the release does: PIL antialiased resize of
the uint8 image, OpenCV erosion and box filters, NumPy histogram, uint8 grey via cv2.cvtColor.
"""
import cv2
import numpy as np
from PIL import Image


def box(x, r):
    return cv2.boxFilter(x, cv2.CV_64F, (r, r))


def guided(i, p, r, eps):
    mi, mp = box(i, r), box(p, r)
    a = (box(i * p, r) - mi * mp) / (box(i * i, r) - mi * mi + eps)
    b = mp - a * mi
    return box(a, r) * i + box(b, r)


def erode(x, k):
    return cv2.erode(x, np.ones((k, k), np.uint8))


def atmosphere(img, r=111, eps=1e-3, bins=2000):
    dc = img.min(axis=2)
    dc = guided(dc, erode(dc, 2 * r + 1), r, eps)
    if dc.max() - dc.min() <= 2 * bins * np.finfo(dc.dtype).eps * max(abs(dc.max()), 1):
        return img.mean(axis=2).max()  # where the release's histogram raises "too many bins"
    counts, edges = np.histogram(dc, bins)
    frac = np.cumsum(counts) / float(dc.size)
    lmax = 1
    for level in range(bins - 1, 0, -1):
        if frac[level] <= 0.999:
            lmax = level
            break
    return img.mean(axis=2)[dc >= edges[lmax]].max()


def release_transmission(rgb_uint8, factor=4):
    """Refined transmission at 1/factor, as the release computes it (float64)."""
    pil = Image.fromarray(rgb_uint8)
    w, h = pil.size
    small = np.asarray(pil.resize((w // factor, h // factor), Image.LANCZOS))
    img = small / 255.0
    a = atmosphere(img)
    t = 1 - 0.95 * erode((img / a).min(axis=2), 15)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float64) / 255  # BGR formula on RGB data
    return guided(grey, t, 60, 1e-4)


def release_masks(rgb_uint8, num_regions=5):
    t = release_transmission(rgb_uint8)
    tn = (t - t.min()) / (t.max() - t.min())
    edges = [j / num_regions for j in range(num_regions + 1)]
    masks = [(tn >= edges[-2])]
    for j in range(num_regions - 2, -1, -1):
        masks.append((tn >= edges[j]) & (tn < edges[j + 1]))
    return np.stack(masks).astype(np.float64)  # (N, h, w), region 0 = clearest
