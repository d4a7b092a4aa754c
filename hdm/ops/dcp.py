"""Dark channel prior (He et al., CVPR 2009 / TPAMI 2011) as batched torch operations.

Every function works on (B, C, H, W) tensors on the input's device and dtype, and is shared by the
HDM region masks and the DCP baselines. Border conventions follow OpenCV as the HDM release uses it:
- min filter (`cv2.erode`): pixels outside the image are ignored;
- box filter (`cv2.boxFilter`, normalised): BORDER_REFLECT_101 (`border="reflect101"`), or He et al.'s
  window clipped to the image and divided by its pixel count (`border="clip"`);
- a window of k pixels covers [y - k//2, y + k - 1 - k//2] (an even window reaches one pixel further up/left).

`dcp_region_masks` is the HDM release's mask procedure (its test script, `tran_mask`):
1. resize the hazy image to 1/4 (PIL antialias = Lanczos-3),
2. dark channel = per-pixel min over RGB, then a 15 x 15 min filter,
3. A = one scalar: refine min-over-RGB with a guided filter (p = its 223 x 223 min filter, window 111,
   eps 1e-3), find in a 2000-bin histogram the level above which 0.1 % of pixels lie, and take the
   largest mean-over-RGB among those pixels,
4. t = 1 - 0.95 * dark_channel(I / A),
5. refine t with a guided filter (guide = grey image, window 60, eps 1e-4),
6. min-max normalise t and cut it into N equal bins; region 0 is the clearest (t >= 0.8 for N = 5).
Deviations from the release, all documented in docs/dcp.md: it computes in floating point
throughout (the release rounds the resized image and its grey version to uint8), and pads the
input to a multiple of 4 before the masks are made (the release only ran on such sizes).
"""
import functools
import math

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, as cv2.COLOR_BGR2GRAY applies them to channels (0, 1, 2) = (B, G, R).
_LUMA_RGB = (0.299, 0.587, 0.114)


def _check_image(x, name="image"):
    if x.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(x.shape)}")


def _window(k):
    """Pixels a window of size k reaches before and after its anchor (OpenCV anchor = k // 2)."""
    if k < 1:
        raise ValueError(f"window size must be >= 1, got {k}")
    return k // 2, k - 1 - k // 2


def _min_along(x, before, after, dim):
    """Sliding minimum along `dim` over [i - before, i + after], ignoring positions outside the axis.

    A window never needs to reach further than the axis is long, so both reaches are clipped to
    n - 1 first (a window covering the whole axis is the axis minimum). The rest is a doubling
    (sparse-table) scheme: minima over 1, 2, 4, ... positions, then any window as the minimum of two
    overlapping power-of-two windows: about log2(k) vectorised minimum operations."""
    n = x.shape[dim]
    if not torch.compiler.is_exporting():  # shortcuts that depend on the size; an exported graph has none
        before, after = min(before, n - 1), min(after, n - 1)
        if before == after == n - 1:
            return x.amin(dim=dim, keepdim=True).expand_as(x)
    k = before + after + 1
    if k == 1:
        return x
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [before, after]
    m = F.pad(x, pad, value=torch.finfo(x.dtype).max)  # length n + k - 1
    span = 1
    while 2 * span <= k:
        length = m.shape[dim] - span
        m = torch.minimum(m.narrow(dim, 0, length), m.narrow(dim, span, length))
        span *= 2
    return torch.minimum(m.narrow(dim, 0, n), m.narrow(dim, k - span, n))


# An exported graph (hdm.export) takes windows up to this size as one max pooling of the negated map:
# ONNX Runtime's pooling beats its form of the doubling minimum there (whose slices are copies), and
# loses beyond (1920 x 1080, 2 threads: window 15: 14 ms against 50; 31: 29 against 68; 61: 4.4 s
# against 70 ms).
POOL_MAX_WINDOW = 31


def min_filter(x, k):
    """k x k minimum filter (grey erosion) ignoring pixels outside the image. x: (B, C, H, W)."""
    _check_image(x)
    before, after = _window(k)
    if torch.compiler.is_exporting() and k <= POOL_MAX_WINDOW:
        if before == after:  # the pooling's own padding is ignored, as pixels outside are here
            return -F.max_pool2d(-x, k, stride=1, padding=before)
        return -F.max_pool2d(F.pad(-x, (before, after, before, after), value=-math.inf), k, stride=1)
    return _min_along(_min_along(x, before, after, 2), before, after, 3)


def _reflect101(idx, n):
    """Map positions on an axis of length n into it by repeated reflection without repeating the
    edge pixel (OpenCV's BORDER_REFLECT_101)."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= n, period - idx, idx)


def _reflect101_index(n, before, after, device):
    """Source indices of a reflect-101 padded axis of length n."""
    return _reflect101(torch.arange(-before, n + after, device=device), n)


def _sum_along(y, k, dim):
    """Sliding sum of width k along `dim` of a padded tensor (length n + k - 1 -> n), by running sums
    in float64 (exact enough for any image size, and the cost does not grow with k)."""
    cs = F.pad(y.double().movedim(dim, -1).cumsum(dim=-1), (1, 0))
    return (cs[..., k:] - cs[..., :-k]).movedim(-1, dim)


# Axes up to this length are box-filtered by a product with a precomputed count matrix (O(n) work
# per pixel, a handful of operations in all; several times faster for the 60 x 60 masks of training crops),
# longer ones by running sums (O(1) per pixel, more operations).
MATMUL_BOX_MAX = 256


@functools.lru_cache(maxsize=64)
def _box_matrix(n, k, border, device):
    """(n, n) float64 averaging weights: entry (i, j) counts how often pixel j lies in the window of
    output i (with reflect-101 repetition, or once inside the image for border 'clip'), divided by
    the window's size."""
    before, after = _window(k)
    rows = torch.arange(n).repeat_interleave(k)
    src = rows + torch.arange(-before, after + 1).repeat(n)
    if border == "reflect101":
        src = _reflect101(src, n)
    else:
        inside = (src >= 0) & (src < n)
        rows, src = rows[inside], src[inside]
    counts = torch.zeros(n, n, dtype=torch.float64)
    counts.index_put_((rows, src), torch.ones(len(rows), dtype=torch.float64), accumulate=True)
    return (counts / counts.sum(dim=1, keepdim=True)).to(device)


def box_filter(x, k, border="reflect101"):
    """Mean over a k x k window. x: (B, C, H, W). border: 'reflect101' (OpenCV) or 'clip' (He et al.).
    Sums are taken in float64."""
    _check_image(x)
    if border not in ("reflect101", "clip"):
        raise ValueError(f"unknown border {border!r}; valid: 'reflect101', 'clip'")
    before, after = _window(k)
    h, w = x.shape[-2:]
    if max(h, w) <= MATMUL_BOX_MAX and not torch.compiler.is_exporting():
        rows, cols = _box_matrix(h, k, border, x.device), _box_matrix(w, k, border, x.device)
        return torch.matmul(torch.matmul(rows, x.double()), cols.t()).to(x.dtype)
    if border == "reflect101":
        y = _sum_along(x.index_select(2, _reflect101_index(h, before, after, x.device)), k, 2)
        y = _sum_along(y.index_select(3, _reflect101_index(w, before, after, x.device)), k, 3)
        return (y / (k * k)).to(x.dtype)
    return _clipped_mean(x, before, after).to(x.dtype)


def _clipped_sum_along(y, before, after, dim):
    """Sums of y along `dim` over the windows [i - before, i + after] clipped to the axis, in float64,
    and each window's count of positions: differences of one running sum of y zero-padded by before + 1
    and after (padded before the cast to float64, and no gather: both cost in ONNX Runtime)."""
    n, k = y.shape[dim], before + after + 1
    cs = F.pad(y, [0, 0] * (y.dim() - 1 - dim) + [before + 1, after]).double().cumsum(dim)  # cs[j] = sum of y[:j - before]
    i = torch.arange(n, device=y.device)
    count = ((i + after + 1).clamp(max=n) - (i - before).clamp(min=0)).to(cs.dtype)
    return cs.narrow(dim, k, n) - cs.narrow(dim, 0, n), count


def _clipped_mean(x, before, after):
    """Means of x (B, C, H, W) over the windows clipped to the image, in float64: sums along the height,
    then the width, divided once by each window's pixel count."""
    y, rows = _clipped_sum_along(x, before, after, 2)
    y, cols = _clipped_sum_along(y, before, after, 3)
    return y * (1 / (rows.unsqueeze(1) * cols))


def guided_filter(guide, p, k, eps, border="reflect101"):
    """Grey guided filter (He et al. ECCV 2010) with a k x k box window. guide, p: (B, 1, H, W).
    The four input means and the two coefficient means are each one box filter over stacked maps."""
    mean_i, mean_p, mean_ip, mean_ii = box_filter(torch.cat((guide, p, guide * p, guide * guide), dim=1),
                                                  k, border).split(1, dim=1)
    a = (mean_ip - mean_i * mean_p) / (mean_ii - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    mean_a, mean_b = box_filter(torch.cat((a, b), dim=1), k, border).split(1, dim=1)
    return mean_a * guide + mean_b


def dark_channel(img, patch=15):
    """Min over channels, then a patch x patch min filter. img: (B, C, H, W) -> (B, 1, H, W)."""
    _check_image(img)
    return min_filter(img.amin(dim=1, keepdim=True), patch)


def grey(img, bgr_quirk=False):
    """BT.601 grey of an RGB image (B, 3, H, W) -> (B, 1, H, W).

    bgr_quirk=True applies OpenCV's BGR2GRAY to the RGB array as the HDM release does, so the R and B
    weights are swapped (0.114 R + 0.587 G + 0.299 B).
    """
    wr, wg, wb = _LUMA_RGB[::-1] if bgr_quirk else _LUMA_RGB
    return wr * img[:, 0:1] + wg * img[:, 1:2] + wb * img[:, 2:3]


def atmospheric_light_top(img, dark, top=0.001):
    """He et al.: among the brightest `top` fraction of the dark channel, the input pixel of highest
    intensity (mean over RGB) is the atmospheric light. img: (B, 3, H, W), dark: (B, 1, H, W) -> (B, 3).

    The n = floor(H W top) brightest are all pixels above the n-th largest dark-channel value and, of
    those equal to it, the first in raster order; among them the first pixel of highest intensity
    wins. Ties are common (the min filter copies values) and this breaks them the same way on every
    backend (topk's own choice among ties differs between PyTorch and ONNX Runtime)."""
    b, c, h, w = img.shape
    # floor(h w top) in integers (top in steps of 1e-6), so an exported graph keeps it a function of the size
    n = torch.sym_max(h * w * round(top * 1_000_000) // 1_000_000, 1)
    dark, brightness = dark.reshape(b, -1), img.mean(dim=1).reshape(b, -1)
    if torch.compiler.is_exporting():
        # ONNX's TopK breaks ties by the lower index (the operator's definition), so its indices are the
        # chosen pixels themselves: n values instead of the whole map's masks and running count below
        index = dark.topk(n, dim=1).indices  # (B, n)
        candidates = brightness.gather(1, index)
        first = torch.where(candidates == candidates.amax(dim=1, keepdim=True), index, h * w)
        best = first.amin(dim=1)  # the first pixel of highest intensity in raster order
    else:
        nth = dark.topk(n, dim=1).values[:, -1:]  # (B, 1): the values are the same whichever ties topk took
        above, tied = dark > nth, dark == nth
        chosen = above | (tied & (tied.cumsum(dim=1, dtype=torch.int32) <= n - above.sum(dim=1, keepdim=True)))
        best = torch.where(chosen, brightness, -math.inf).argmax(dim=1)  # the first maximum
    return img.reshape(b, c, -1)[torch.arange(b, device=img.device), :, best]


def atmospheric_light_hist(img, radius=111, eps=1e-3, bins=2000, top=0.001):
    """The HDM release's atmospheric light: one scalar per image, returned as (B, 3).

    m = min over RGB, refined by a guided filter (guide m, p = its (2 radius + 1)^2 min filter,
    window `radius`, eps); in a `bins`-bin histogram of the refined m (numpy's edges over [min, max]),
    the highest bin edge whose cumulative fraction is <= 1 - top is the threshold; A = the largest
    mean over RGB among the pixels at or above it.
    """
    _check_image(img)
    b = img.shape[0]
    m = img.amin(dim=1, keepdim=True)
    p = min_filter(m, 2 * radius + 1)
    brightness = img.mean(dim=1).reshape(b, -1)
    if (p.amin(dim=(1, 2, 3)) == p.amax(dim=(1, 2, 3))).all():
        # the min filter covers each whole image (any image smaller than the window, e.g. a training
        # crop): a guided filter of a constant map returns it up to rounding, so the map is flat and
        # every pixel qualifies (see below)
        return brightness.amax(dim=1).unsqueeze(1).expand(b, 3)
    m = guided_filter(m, p, radius, eps).reshape(b, -1)
    lo, hi = m.amin(dim=1, keepdim=True), m.amax(dim=1, keepdim=True)
    # numpy widens an empty range to [v - 0.5, v + 0.5]. A range too small for `bins` distinct edges
    # counts as empty too: it happens when the (2 radius + 1)^2 min filter covers the whole (small)
    # image, so the refined map is flat up to rounding, and the release's numpy histogram raises.
    flat = (hi - lo) <= 2 * bins * torch.finfo(m.dtype).eps * hi.abs().clamp_min(1)
    lo, hi = torch.where(flat, lo - 0.5, lo), torch.where(flat, hi + 0.5, hi)
    steps = torch.arange(bins + 1, device=img.device, dtype=m.dtype) / bins
    edges = lo + (hi - lo) * steps  # (B, bins + 1), numpy.linspace
    # bin index as numpy computes it: scaled guess, then corrected against the actual edges
    index = ((m - lo) * (bins / (hi - lo))).long().clamp(0, bins - 1)
    index = index - (m < edges.gather(1, index)).long()
    index = index + ((m >= edges.gather(1, index + 1)) & (index != bins - 1)).long()
    counts = torch.zeros(b, bins, dtype=torch.float64, device=img.device)
    counts.scatter_add_(1, index, torch.ones_like(m, dtype=torch.float64))
    cum = counts.cumsum(dim=1) / m.shape[1]
    levels = torch.arange(bins, device=img.device)
    ok = (cum <= 1 - top) & (levels >= 1)
    lmax = torch.where(ok, levels, torch.ones_like(levels)).amax(dim=1, keepdim=True)  # release loop: >= 1
    threshold = edges.gather(1, lmax)
    a = torch.where(m >= threshold, brightness, torch.full_like(brightness, -math.inf)).amax(dim=1)
    return a.unsqueeze(1).expand(b, 3)


# the least atmospheric light a channel divides by: an image black in a channel has A = 0 there, and
# I / A would be 0 / 0 (the release then gives NaN); a channel of an 8-bit image is either 0 or >= 1/255
A_MIN = 1e-6


def transmission(img, atmosphere, patch=15, omega=0.95):
    """Raw transmission t = 1 - omega * dark_channel(I / A), A at least A_MIN. atmosphere: (B, 3) -> (B, 1, H, W)."""
    return 1 - omega * dark_channel(img / atmosphere.view(-1, 3, 1, 1).clamp_min(A_MIN), patch)


def _lanczos(x, a=3.0):
    x = x.abs()
    out = torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) * torch.sin(math.pi * x / a)
                      / (math.pi * math.pi * x * x / a).clamp_min(1e-300))
    return torch.where(x < a, out, torch.zeros_like(x))


@functools.lru_cache(maxsize=64)
def _pil_resample_matrix(n_in, n_out):
    """(n_out, n_in) float64 weights of PIL's antialiased Lanczos resampling along one axis."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    mat = torch.zeros(n_out, n_in, dtype=torch.float64)
    for o in range(n_out):
        centre = (o + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        pos = torch.arange(lo, hi, dtype=torch.float64)
        wts = _lanczos((pos - centre + 0.5) / filterscale)
        mat[o, lo:hi] = wts / wts.sum()
    return mat


@functools.lru_cache(maxsize=64)
def _resample_bands(n_in, n_out, dtype, device, group=16):
    """The resampling matrix cut into blocks of `group` output rows, each kept only over the input
    columns its rows reach: [(first input, last input + 1, block)] in output order, blocks in `dtype`
    on `device`."""
    mat = _pil_resample_matrix(n_in, n_out)
    bands = []
    for start in range(0, n_out, group):
        rows = mat[start:start + group]
        reach = rows.ne(0).any(dim=0).nonzero().flatten()
        lo, hi = int(reach[0]), int(reach[-1]) + 1
        bands.append((lo, hi, rows[:, lo:hi].to(device=device, dtype=dtype)))
    return bands


def _resample(x, n_out, dim):
    """PIL's Lanczos resampling of x along dim -2 or -1 to n_out samples. The weights are banded
    (about 6 x scale taps per output), so each block of outputs multiplies only the input rows or
    columns it reaches: the dense product's arithmetic divided by about n_in / (16 scale + 6 scale)."""
    outs = []
    for lo, hi, block in _resample_bands(x.shape[dim], n_out, x.dtype, x.device):
        if dim == -2:
            outs.append(torch.matmul(block, x[..., lo:hi, :]))
        else:
            outs.append(torch.matmul(x[..., lo:hi], block.t()))
    return torch.cat(outs, dim=dim)


def resize_lanczos(img, size):
    """Antialiased Lanczos-3 resize with PIL's weights (Image.LANCZOS, float), summed in float64 as PIL
    sums, then in img's dtype. img: (B, C, H, W). The wide sums also make the result independent of the
    order of summation (float32 products summed by different libraries differ in their last bit, which
    can move a region mask's bin): hdm.deploy.dcp_masks gives the same values in NumPy."""
    _check_image(img)
    return _resample(_resample(img.double(), size[0], -2), size[1], -1).to(img.dtype)


def downscale(img, factor, mode="lanczos"):
    """Resize to (H // factor, W // factor): 'lanczos' (PIL antialias, the release) or 'area' (mean)."""
    h, w = img.shape[-2:]
    size = (max(h // factor, 1), max(w // factor, 1))
    if factor == 1:
        return img
    if mode == "lanczos":
        return resize_lanczos(img, size)
    if mode == "area":
        return F.adaptive_avg_pool2d(img, size)
    raise ValueError(f"unknown resize mode {mode!r}; valid: 'lanczos', 'area'")


def bin_masks(t, num_regions):
    """One-hot region masks from a map t (B, 1, h, w) -> (B, N, h, w), float.

    t is min-max normalised per image and cut into N equal bins; region 0 holds the largest values
    (for N = 5: t >= 0.8, then [0.6, 0.8), ..., [0, 0.2)). A constant map falls wholly in region N - 1.
    """
    if num_regions < 1:
        raise ValueError(f"num_regions must be >= 1, got {num_regions}")
    b = t.shape[0]
    lo = t.reshape(b, -1).amin(dim=1).view(b, 1, 1, 1)
    hi = t.reshape(b, -1).amax(dim=1).view(b, 1, 1, 1)
    tn = torch.where(hi > lo, (t - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi)), torch.zeros_like(t))
    level = torch.zeros_like(t, dtype=torch.long)
    for j in range(1, num_regions):
        level = level + (tn >= j / num_regions).long()  # the release's `>=` comparisons, bin by bin
    region = (num_regions - 1) - level
    return (region == torch.arange(num_regions, device=t.device).view(1, -1, 1, 1)).to(t.dtype)


def dcp_transmission(img, downscale_factor=4, patch=15, omega=0.95, atm_radius=111, atm_eps=1e-3,
                     refine_window=60, refine_eps=1e-4, resize="lanczos", bgr_quirk=True):
    """Refined transmission of the HDM release at 1/downscale_factor. img: RGB (B, 3, H, W) in [0, 1]."""
    _check_image(img)
    if img.shape[1] != 3:
        raise ValueError(f"DCP masks need an RGB image (B, 3, H, W), got shape {tuple(img.shape)}")
    small = downscale(img, downscale_factor, resize)
    atmosphere = atmospheric_light_hist(small, atm_radius, atm_eps)
    t = transmission(small, atmosphere, patch, omega)
    return guided_filter(grey(small, bgr_quirk), t, refine_window, refine_eps)


@torch.no_grad()
def dcp_region_masks(img, num_regions=5, downscale_factor=4, patch=15, omega=0.95, atm_radius=111,
                     atm_eps=1e-3, refine_window=60, refine_eps=1e-4, resize="lanczos", bgr_quirk=True):
    """HDM's DCP-guided region masks. img: RGB (B, 3, H, W) in [0, 1] -> one-hot (B, N, H/4, W/4)."""
    t = dcp_transmission(img, downscale_factor, patch, omega, atm_radius, atm_eps, refine_window,
                         refine_eps, resize, bgr_quirk)
    return bin_masks(t, num_regions)
