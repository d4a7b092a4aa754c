"""HDM's DCP region masks in NumPy, for exported HDM graphs that take the masks as their second input.

A port of hdm.ops.dcp.dcp_region_masks operation by operation, in the same precisions (the image in
float32, the resampling and box-filter sums in float64, the histogram edges in float32), so the masks
equal the torch ones (tests/test_export.py compares them on photos). See hdm.ops.dcp for the
procedure and its conventions; hdm.export says why the masks are not part of the graph.
"""
import functools
import math

import numpy as np

A_MIN = 1e-6  # hdm.ops.dcp.A_MIN, the least atmospheric light divided by (that module needs torch; a test ties them)


def _window(k):
    return k // 2, k - 1 - k // 2


def _min_along(x, before, after, axis):
    """Sliding minimum over [i - before, i + after] along `axis`, positions outside ignored (a
    doubling scheme over +max padding, as hdm.ops.dcp._min_along)."""
    n = x.shape[axis]
    before, after = min(before, n - 1), min(after, n - 1)
    k = before + after + 1
    if k == 1:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (before, after)
    m = np.pad(x, pad, constant_values=np.finfo(x.dtype).max)
    def part(start, length):
        return m[(slice(None),) * axis + (slice(start, start + length),)]

    span = 1
    while 2 * span <= k:
        length = m.shape[axis] - span
        m = np.minimum(part(0, length), part(span, length))
        span *= 2
    return np.minimum(part(0, n), part(k - span, n))


def min_filter(x, k):
    before, after = _window(k)
    return _min_along(_min_along(x, before, after, 2), before, after, 3)


def _reflect101(idx, n):
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.remainder(idx, period)
    return np.where(idx >= n, period - idx, idx)


@functools.lru_cache(maxsize=64)
def _box_matrix(n, k):
    """(n, n) float64 reflect-101 averaging weights (hdm.ops.dcp._box_matrix)."""
    before, after = _window(k)
    rows = np.repeat(np.arange(n), k)
    src = _reflect101(rows + np.tile(np.arange(-before, after + 1), n), n)
    counts = np.zeros((n, n))
    np.add.at(counts, (rows, src), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def _sum_along(y, k, axis):
    cs = np.cumsum(np.moveaxis(y.astype(np.float64), axis, -1), axis=-1)
    cs = np.concatenate([np.zeros_like(cs[..., :1]), cs], axis=-1)
    return np.moveaxis(cs[..., k:] - cs[..., :-k], -1, axis)


def box_filter(x, k, matmul_max=256):
    """Reflect-101 box filter (OpenCV's boxFilter), sums in float64, as hdm.ops.dcp.box_filter."""
    before, after = _window(k)
    h, w = x.shape[-2:]
    if max(h, w) <= matmul_max:
        return (_box_matrix(h, k) @ x.astype(np.float64) @ _box_matrix(w, k).T).astype(x.dtype)
    y = _sum_along(x.take(_reflect101(np.arange(-before, h + after), h), axis=2), k, 2)
    y = _sum_along(y.take(_reflect101(np.arange(-before, w + after), w), axis=3), k, 3)
    return (y / (k * k)).astype(x.dtype)


def guided_filter(guide, p, k, eps):
    mean_i, mean_p, mean_ip, mean_ii = np.split(box_filter(np.concatenate((guide, p, guide * p, guide * guide), 1), k), 4, 1)
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + np.float32(eps))
    b = mean_p - a * mean_i
    mean_a, mean_b = np.split(box_filter(np.concatenate((a, b), 1), k), 2, 1)
    return mean_a * guide + mean_b


def _lanczos(x, a=3.0):
    x = np.abs(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(x == 0, 1.0, np.sin(math.pi * x) * np.sin(math.pi * x / a) / np.maximum(math.pi * math.pi * x * x / a,
                                                                                             1e-300))
    return np.where(x < a, out, 0.0)


@functools.lru_cache(maxsize=64)
def _resample_matrix(n_in, n_out):
    """(n_out, n_in) weights of PIL's antialiased Lanczos-3 resampling (hdm.ops.dcp._pil_resample_matrix)."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    mat = np.zeros((n_out, n_in))
    for o in range(n_out):
        centre = (o + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        wts = _lanczos((np.arange(lo, hi, dtype=np.float64) - centre + 0.5) / filterscale)
        mat[o, lo:hi] = wts / wts.sum()
    return mat


def downscale(img, factor, mode):
    h, w = img.shape[-2:]
    size = (max(h // factor, 1), max(w // factor, 1))
    if factor == 1:
        return img
    if mode == "area":
        if h % size[0] or w % size[1]:
            raise ValueError("resize='area' in NumPy needs sides divisible by the factor")
        return img.reshape(*img.shape[:2], size[0], h // size[0], size[1], w // size[1]).mean(axis=(3, 5), dtype=img.dtype)
    return _resample(_resample(img.astype(np.float64), size[0], 2), size[1], 3).astype(img.dtype)


def _resample(x, n_out, axis, group=16):
    """PIL's Lanczos-3 resampling along `axis` (2 or 3) in float64, each block of `group` outputs
    multiplying only the inputs it reaches (hdm.ops.dcp._resample)."""
    mat, outs = _resample_matrix(x.shape[axis], n_out), []
    for start in range(0, n_out, group):
        rows = mat[start:start + group]
        reach = np.flatnonzero(rows.any(axis=0))
        lo, hi = reach[0], reach[-1] + 1
        if axis == 2:
            outs.append(rows[:, lo:hi] @ x[:, :, lo:hi])
        else:
            outs.append(x[..., lo:hi] @ rows[:, lo:hi].T)
    return np.concatenate(outs, axis=axis)


def atmospheric_light_hist(img, radius, eps, bins=2000, top=0.001):
    """hdm.ops.dcp.atmospheric_light_hist: (B, 3, h, w) -> (B, 3)."""
    b = img.shape[0]
    m = img.min(axis=1, keepdims=True)
    p = min_filter(m, 2 * radius + 1)
    brightness = img.mean(axis=1, dtype=np.float32).reshape(b, -1)
    if (p.min(axis=(1, 2, 3)) == p.max(axis=(1, 2, 3))).all():
        return np.repeat(brightness.max(axis=1, keepdims=True), 3, axis=1)
    m = guided_filter(m, p, radius, eps).reshape(b, -1)
    lo, hi = m.min(axis=1, keepdims=True), m.max(axis=1, keepdims=True)
    flat = (hi - lo) <= 2 * bins * np.finfo(m.dtype).eps * np.maximum(np.abs(hi), 1)
    lo, hi = np.where(flat, lo - np.float32(0.5), lo), np.where(flat, hi + np.float32(0.5), hi)
    edges = lo + (hi - lo) * (np.arange(bins + 1, dtype=m.dtype) / m.dtype.type(bins))
    index = np.clip(((m - lo) * (m.dtype.type(bins) / (hi - lo))).astype(np.int64), 0, bins - 1)
    index = index - (m < np.take_along_axis(edges, index, 1))
    index = index + ((m >= np.take_along_axis(edges, index + 1, 1)) & (index != bins - 1))
    counts = np.zeros((b, bins))
    for i in range(b):
        counts[i] = np.bincount(index[i], minlength=bins)
    cum = counts.cumsum(axis=1) / m.shape[1]
    levels = np.arange(bins)
    ok = (cum <= 1 - top) & (levels >= 1)
    lmax = np.where(ok, levels, 1).max(axis=1, keepdims=True)
    threshold = np.take_along_axis(edges, lmax, 1)
    a = np.where(m >= threshold, brightness, -np.inf).max(axis=1)
    return np.repeat(a[:, None], 3, axis=1).astype(img.dtype)


def bin_masks(t, num_regions):
    b = t.shape[0]
    lo = t.reshape(b, -1).min(axis=1).reshape(b, 1, 1, 1)
    hi = t.reshape(b, -1).max(axis=1).reshape(b, 1, 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tn = np.where(hi > lo, (t - lo) / np.where(hi > lo, hi - lo, 1), 0).astype(t.dtype)
    level = np.zeros(t.shape, dtype=np.int64)
    for j in range(1, num_regions):
        level += tn >= t.dtype.type(j / num_regions)
    region = (num_regions - 1) - level
    return (region == np.arange(num_regions).reshape(1, -1, 1, 1)).astype(t.dtype)


def region_masks(img, num_regions=5, downscale_factor=4, patch=15, omega=0.95, atm_radius=111, atm_eps=1e-3,
                 refine_window=60, refine_eps=1e-4, resize="lanczos", bgr_quirk=True):
    """One-hot region masks (B, N, H/4, W/4) of an RGB float32 batch (B, 3, H, W) in [0, 1] whose sides
    are multiples of 4 (hdm.ops.dcp.dcp_region_masks with the same arguments)."""
    img = np.asarray(img, dtype=np.float32)
    small = downscale(img, downscale_factor, resize)
    a = atmospheric_light_hist(small, atm_radius, atm_eps)
    a = np.maximum(a, np.float32(A_MIN))  # as hdm.ops.dcp.transmission
    t = 1 - np.float32(omega) * min_filter((small / a.reshape(-1, 3, 1, 1)).min(axis=1, keepdims=True), patch)
    wr, wg, wb = (0.114, 0.587, 0.299) if bgr_quirk else (0.299, 0.587, 0.114)
    grey = np.float32(wr) * small[:, 0:1] + np.float32(wg) * small[:, 1:2] + np.float32(wb) * small[:, 2:3]
    return bin_masks(guided_filter(grey, t, refine_window, refine_eps), num_regions)
