"""Modulated deformable convolution (DCNv2, Zhu et al. CVPR 2019) with interchangeable backends.

The layer reproduces the `DCN` module of CharlesShang/DCNv2 that the HDM and AECR-Net releases use:
parameters `weight` (C_out, C_in, k, k), `bias` (C_out,) and `conv_offset_mask`, a k x k conv
C_in -> 3 * k * k whose output is split into three equal chunks o1, o2, m;
offset = cat(o1, o2) holds (dy, dx) pairs per kernel tap (torchvision's layout) and mask = sigmoid(m).
Samples outside the image read zero; interpolation is bilinear.

Backends of `modulated_deform_conv2d` (same arguments, same result):
- ``torch``: pure PyTorch. All k * k taps are sampled in one `grid_sample` call and contracted with
  the weight in one matmul. Runs on every device and is differentiated by autograd.
- ``torchvision``: `torchvision.ops.deform_conv2d`, when its compiled ops load.
- ``mmcv``: `mmcv.ops.modulated_deform_conv2d`, when mmcv with compiled ops imports.
``auto`` on CUDA times the available backends once (forward + backward) and takes the fastest; on
every other device it takes ``torch`` (on CPU the fastest by scripts/benchmark.py); the choice is
logged once per device type.
"""
import functools
import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.device import median_time
from hdm.kinds import Available

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "torchvision", "mmcv")


def deform_conv2d_torch(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1):
    """Pure-PyTorch modulated deformable convolution.

    Args:
        x: (B, C_in, H, W) input.
        offset: (B, 2 * kh * kw, H_out, W_out), (dy, dx) per tap, taps in row-major order.
        mask: (B, kh * kw, H_out, W_out) modulation scalars (already passed through sigmoid).
        weight: (C_out, C_in, kh, kw); bias: (C_out,) or None.
    Returns:
        (B, C_out, H_out, W_out)
    """
    b, c, h, w = x.shape
    c_out, c_in, kh, kw = weight.shape
    if c_in != c:
        raise ValueError(f"deform_conv2d: input has {c} channels, weight expects {c_in}")
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    k = kh * kw
    dtype, device = x.dtype, x.device

    # Regular sampling grid p0 + pk for every tap k and output pixel: (k, H_out, W_out).
    ys = torch.arange(h_out, device=device, dtype=dtype) * sh - ph
    xs = torch.arange(w_out, device=device, dtype=dtype) * sw - pw
    ky = (torch.arange(kh, device=device, dtype=dtype) * dh).repeat_interleave(kw)
    kx = (torch.arange(kw, device=device, dtype=dtype) * dw).repeat(kh)
    base_y = ky.view(k, 1, 1) + ys.view(1, h_out, 1)
    base_x = kx.view(k, 1, 1) + xs.view(1, 1, w_out)

    off = offset.view(b, k, 2, h_out, w_out)
    py = base_y + off[:, :, 0]  # (B, k, H_out, W_out), pixel coordinates
    px = base_x + off[:, :, 1]
    # grid_sample with align_corners=False maps pixel centre i to (2i + 1) / size - 1; zeros padding
    # gives DCNv2's "out-of-image corners read zero" bilinear interpolation.
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1)
    grid = grid.view(b, k * h_out, w_out, 2)
    cols = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # in place: the sampled columns are a fresh tensor that grid_sample's backward does not need
    cols = cols.view(b, c, k, h_out * w_out).mul_(mask.reshape(b, 1, k, h_out * w_out))
    out = torch.matmul(weight.reshape(c_out, c * k), cols.reshape(b, c * k, h_out * w_out))
    out = out.view(b, c_out, h_out, w_out)
    if bias is not None:
        out = out.add_(bias.view(1, c_out, 1, 1))
    return out


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@functools.lru_cache(maxsize=None)
def _torchvision_ops():
    """torchvision.ops.deform_conv2d if torchvision imports and its compiled op is registered."""
    try:
        import torchvision.ops  # noqa: F401  (a CUDA wheel beside a CPU torch fails right here)

        torch.ops.torchvision.deform_conv2d  # noqa: B018 - raises if the compiled ops did not load
        return torchvision.ops.deform_conv2d
    except Exception as err:  # installed-but-broken counts as absent
        logger.debug("torchvision deform_conv2d unavailable: %s", err)
        return None


@functools.lru_cache(maxsize=None)
def _mmcv_ops():
    """mmcv.ops.modulated_deform_conv2d if mmcv imports with its compiled ops."""
    try:
        from mmcv.ops import modulated_deform_conv2d

        return modulated_deform_conv2d
    except Exception as err:
        logger.debug("mmcv modulated_deform_conv2d unavailable: %s", err)
        return None


def available_backends():
    """Backends whose code loads in this process (``torch`` always)."""
    found = ["torch"]
    if _torchvision_ops() is not None:
        found.append("torchvision")
    if _mmcv_ops() is not None:
        found.append("mmcv")
    return found


# the config's limit on a backend's name: a known one whose library loads in this process
BACKEND_HERE = Available(BACKENDS, lambda: ("auto", *available_backends()))


def time_backends(device, shape=(2, 64, 64, 64), repeats=5):
    """{backend: median seconds of forward + backward} of every available backend on `device`, for a
    3x3 deformable conv of input `shape` with random offsets (after one warm-up)."""
    b, c, h, w = shape
    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(b, c, h, w, generator=gen), 2 * torch.randn(b, 18, h, w, generator=gen),
            torch.rand(b, 9, h, w, generator=gen), 0.05 * torch.randn(c, c, 3, 3, generator=gen), torch.zeros(c)]
    args = [a.to(device).requires_grad_() for a in args]
    times = {}
    for name in available_backends():
        times[name] = median_time(lambda: modulated_deform_conv2d(*args, 1, 1, 1, backend=name).sum().backward(),
                                  repeats, device)
    return times


@functools.lru_cache(maxsize=None)
def resolve_backend(backend, device_type):
    """Concrete backend name for a requested one on a device type ('cpu', 'cuda', ...).

    'auto' on CUDA times every available backend once (time_backends) and takes the fastest; on
    other devices it is 'torch' (on CPU the fastest by scripts/benchmark.py, 3x to 8x ahead of mmcv)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown deformable-conv backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        chosen, reason = "torch", "the only backend measured fastest off CUDA"
        if device_type == "cuda" and len(available_backends()) > 1:
            times = time_backends(torch.device("cuda"))
            chosen = min(times, key=times.get)
            reason = "measured: " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in times.items())
        logger.info("deformable conv on %s: using the %s backend (%s)", device_type, chosen, reason)
        return chosen
    if backend not in available_backends():
        raise RuntimeError(
            f"deformable-conv backend {backend!r} was requested but does not load here "
            f"(available: {', '.join(available_backends())})"
        )
    return backend


def modulated_deform_conv2d(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1,
                            backend="auto"):
    """Modulated deformable conv on the chosen backend; arguments as `deform_conv2d_torch`."""
    name = resolve_backend(backend, x.device.type)
    if name == "torch":
        return deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, dilation)
    if name == "torchvision":
        return _torchvision_ops()(x, offset, weight, bias, stride=_pair(stride), padding=_pair(padding),
                                  dilation=_pair(dilation), mask=mask)
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    return _mmcv_ops()(x, offset, mask, weight, bias, stride, padding, dilation, 1, 1)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer with the released parameter names (`weight`, `bias`, `conv_offset_mask`).

    Initialisation follows DCNv2: weight ~ U(-1/sqrt(n), 1/sqrt(n)) with n = C_in * k * k, zero bias,
    and a zero `conv_offset_mask`, so a fresh layer is a plain convolution with mask 0.5.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, dilation=1,
                 backend="auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown deformable-conv backend {backend!r}; valid: {', '.join(BACKENDS)}")
        kh, kw = _pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * kh * kw, (kh, kw), stride=stride,
                                          padding=padding, dilation=dilation, bias=True)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.weight[0].numel())
        nn.init.uniform_(self.weight, -stdv, stdv)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x):
        o1, o2, m = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        mask = torch.sigmoid(m)
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride,
                                       self.padding, self.dilation, backend=self.backend)

    def extra_repr(self):
        return (f"{self.weight.shape[1]}, {self.weight.shape[0]}, kernel_size={tuple(self.weight.shape[2:])}, "
                f"stride={self.stride}, padding={self.padding}, backend={self.backend}")
