"""Building blocks shared by HDM and AECR-Net.

Names and parameter layouts follow the released checkpoints (FFA-Net's FA block, AECR-Net's Mix and
DCN block, HDM's region-level dynamic convolution), so released weights load by name.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.ops import ModulatedDeformConv2d


def pad_rgb_input(lq, multiple, name):
    """Check that lq is an RGB batch (B, 3, H, W) and pad it (edge replication, bottom and right) to a
    multiple of `multiple`. Returns (padded, (H, W)) so the output can be cropped back."""
    if lq.dim() != 4 or lq.shape[1] != 3:
        raise ValueError(f"{name} expects an RGB batch (B, 3, H, W), got shape {tuple(lq.shape)}")
    h, w = lq.shape[-2:]
    # no branch on the size: an exported graph (hdm.export) pads whatever its input size is
    return F.pad(lq, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate"), (h, w)


def conv(in_channels, out_channels, kernel_size, stride=1, bias=True):
    """Conv with 'same' zero padding for odd kernels."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=bias)


class CALayer(nn.Module):
    """Channel attention (FFA-Net): GAP -> 1x1 C->C/8 -> ReLU -> 1x1 C/8->C -> sigmoid, multiply."""

    def __init__(self, channels, reduction=8):
        super().__init__()
        self.ca = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.ca(F.adaptive_avg_pool2d(x, 1))


class PALayer(nn.Module):
    """Pixel attention (FFA-Net): 1x1 C->C/8 -> ReLU -> 1x1 C/8->1 -> sigmoid, multiply."""

    def __init__(self, channels, reduction=8):
        super().__init__()
        self.pa = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.pa(x)


class FABlock(nn.Module):
    """Feature-attention block (FFA-Net): r = relu(conv1 x) + x; r = PA(CA(conv2 r)); return r + x."""

    def __init__(self, channels, kernel_size=3):
        super().__init__()
        self.conv1 = conv(channels, channels, kernel_size)
        self.conv2 = conv(channels, channels, kernel_size)
        self.calayer = CALayer(channels)
        self.palayer = PALayer(channels)

    def forward(self, x):
        r = F.relu(self.conv1(x)) + x
        r = self.palayer(self.calayer(self.conv2(r)))
        return r + x


class FAGroup(nn.Module):
    """`blocks` FA blocks then a 3x3 conv, plus the group input (HDM's P level, one group)."""

    def __init__(self, channels, blocks, kernel_size=3):
        super().__init__()
        self.gp = nn.Sequential(*[FABlock(channels, kernel_size) for _ in range(blocks)],
                                conv(channels, channels, kernel_size))

    def forward(self, x):
        return self.gp(x) + x


class Mix(nn.Module):
    """Adaptive mixup (AECR-Net): s * a + (1 - s) * b with s = sigmoid(w), w a learned scalar."""

    def __init__(self, init):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([float(init)]))

    def forward(self, a, b):
        s = torch.sigmoid(self.w)
        return a * s + b * (1 - s)


class DCNBlock(nn.Module):
    """3x3 modulated deformable conv (HDM's S level; AECR-Net's DFE), no activation."""

    def __init__(self, in_channels, out_channels, backend="auto"):
        super().__init__()
        self.dcn = ModulatedDeformConv2d(in_channels, out_channels, 3, stride=1, padding=1, backend=backend)

    def forward(self, x):
        return self.dcn(x)


def straight_through_onehot(logits):
    """One-hot argmax over dim 1 in the forward pass; the gradient of softmax(logits) in the backward."""
    soft = torch.softmax(logits, dim=1)
    hard = F.one_hot(logits.argmax(dim=1), logits.shape[1]).movedim(-1, 1).to(soft.dtype)
    return hard + (soft - soft.detach())  # exactly `hard` forward


REGION_CONV_STRATEGIES = ("auto", "masked_sum", "per_region")


def is_one_hot(mask):
    """Whether mask (B, N, h, w) holds exactly one 1 and N - 1 zeros at every pixel."""
    return bool(((mask == 0) | (mask == 1)).all() and (mask.sum(dim=1) == 1).all())


def region_conv_masked_sum(x, filters, mask):
    """The release's region conv: every region's filters on the whole map, summed under the masks.
    x: (B, C, h, w); filters: (B, N, C_out, C, k, k); mask: (B, N, h, w), any weights."""
    b, c, h, w = x.shape
    n, c_out, _, k, _ = filters.shape[1:]
    feats = F.conv2d(x.reshape(1, b * c, h, w), filters.reshape(b * n * c_out, c, k, k), padding=k // 2, groups=b)
    return (feats.view(b, n, c_out, h, w) * mask.unsqueeze(2).to(feats.dtype)).sum(dim=1)


def region_conv_per_region(x, filters, region):
    """The same result for one-hot masks with each pixel computed only with its own region's filters
    (1/N of the masked sum's arithmetic): for every region, the k x k neighbourhoods of its pixels
    are gathered as rows (tap-major) from the zero-padded NHWC map and multiplied by that region's
    filters in one matrix product.
    x: (B, C, h, w); filters: (B, N, C_out, C, k, k); region: (B, h, w) integer region index.
    Returns (B, C_out, h, w) in channels_last layout."""
    b, c, h, w = x.shape
    n, c_out, _, k, _ = filters.shape[1:]
    hp, wp = h + k - 1, w + k - 1
    padded = F.pad(x, (k // 2,) * 4).permute(0, 2, 3, 1).reshape(b * hp * wp, c)
    taps = (torch.arange(k, device=x.device).view(k, 1) * wp + torch.arange(k, device=x.device)).flatten()
    weights = filters.permute(0, 1, 2, 4, 5, 3).reshape(b, n, c_out, k * k * c)  # same tap-major order
    out = x.new_empty(b * h * w, c_out)
    for i in range(b):
        labels = region[i].reshape(-1)
        for r in range(n):
            pixels = (labels == r).nonzero().squeeze(1)
            corners = i * hp * wp + torch.div(pixels, w, rounding_mode="floor") * wp + pixels % w
            rows = padded.index_select(0, (corners.unsqueeze(1) + taps).flatten()).view(-1, k * k * c)
            out.index_copy_(0, i * h * w + pixels, rows @ weights[i, r].t())
    return out.view(b, h, w, c_out).permute(0, 3, 1, 2)


class AdaptiveAvgPool(nn.Module):
    """nn.AdaptiveAvgPool2d(size) for any input size also in an exported graph: there (hdm.export) the
    bins [floor(i H / size), ceil((i + 1) H / size)) are summed from running sums, since torch.export
    fixes PyTorch's own bins to the traced size; elsewhere PyTorch's pooling."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def forward(self, x):
        if not torch.compiler.is_exporting():
            return F.adaptive_avg_pool2d(x, self.size)
        for dim in (2, 3):
            n, i = x.shape[dim], torch.arange(self.size, device=x.device)
            start, end = i * n // self.size, ((i + 1) * n + self.size - 1) // self.size
            sums = F.pad(x.cumsum(dim).movedim(dim, -1), (1, 0))
            x = ((sums.index_select(-1, end) - sums.index_select(-1, start)) / (end - start)).movedim(-1, dim)
        return x


class RegionConv(nn.Module):
    """Region-level dynamic convolution (HDM eq. 6; DRConv, Chen et al. CVPR 2021).

    A filter-generation branch turns the input x (B, C, h, w) into N dynamic k x k filters per sample:
    AdaptiveAvgPool(k) -> 1x1 C->N*N -> sigmoid -> 1x1 N*N->N*C*C in N groups, read as filters with
    channel index (region * C + out) * C + in (region r depends only on sigmoid features [N r, N r + N)).
    Each pixel is filtered with its region's filters, the regions given by one-hot masks (B, N, h, w).

    With `learned_guide=True` (HDM-F) the masks come from a guide conv k x k C->N: one-hot argmax in
    the forward pass, gradients through softmax(guide) in the backward pass (straight-through).

    `strategy`: 'masked_sum' computes it as the release does (all N filters on the whole map, summed
    under the masks; the only way gradients reach a learned guide), 'per_region' computes each pixel
    with its own region's filters only (one-hot masks; equal up to float rounding), 'auto' takes
    per_region for inference on CPU with one-hot masks (1.9x faster there, see scripts/benchmark.py)
    and masked_sum otherwise (with gradients per_region is not faster at batch 16).
    """

    def __init__(self, channels, num_regions=5, kernel_size=3, learned_guide=False, strategy="auto"):
        super().__init__()
        if strategy not in REGION_CONV_STRATEGIES:
            raise ValueError(f"region conv strategy {strategy!r} is not one of {', '.join(REGION_CONV_STRATEGIES)}")
        self.channels, self.num_regions, self.kernel_size = channels, num_regions, kernel_size
        self.strategy = strategy
        n = num_regions
        self.conv_kernel = nn.Sequential(
            AdaptiveAvgPool(kernel_size),
            nn.Conv2d(channels, n * n, 1),
            nn.Sigmoid(),
            nn.Conv2d(n * n, n * channels * channels, 1, groups=n))
        self.conv_guide = conv(channels, n, kernel_size) if learned_guide else None

    def _per_region(self, x, mask):
        if self.strategy == "masked_sum" or torch.compiler.is_exporting():
            return False
        if self.strategy == "per_region":
            if (torch.is_grad_enabled() and mask.requires_grad) or not is_one_hot(mask):
                raise ValueError("region conv strategy 'per_region' needs one-hot masks without gradient; "
                                 "use 'masked_sum' (or 'auto') for soft or learned masks in training")
            return True
        return x.device.type == "cpu" and not torch.is_grad_enabled() and is_one_hot(mask)

    def forward(self, x, mask=None):
        """x: (B, C, h, w); mask: one-hot (B, N, h, w), required unless the guide is learned."""
        b, c, h, w = x.shape
        n, k = self.num_regions, self.kernel_size
        if self.conv_guide is not None:
            mask = straight_through_onehot(self.conv_guide(x))
        elif mask is None:
            raise ValueError("RegionConv needs region masks (B, N, h, w) when its guide is not learned")
        if mask.shape != (b, n, h, w):
            raise ValueError(f"region masks must be {(b, n, h, w)}, got {tuple(mask.shape)}")
        filters = self.conv_kernel(x).reshape(b, n, c, c, k, k)
        if self._per_region(x, mask):
            return region_conv_per_region(x, filters, mask.argmax(dim=1))
        return region_conv_masked_sum(x, filters, mask)
