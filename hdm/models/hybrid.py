"""Low-light image enhancement via a deep hybrid network (Ren, Liu, Ma, Xu, Lau, Yang, Zuo; TIP 2019).

There is no public code; this follows the paper's text (Sec. III) and fills its gaps as stated here.

Content stream: a residual encoder-decoder. Three conv modules at 1/2, 1/4, 1/8 of the input, three
3x3 conv layers each (the first with stride 2), ReLU, and a skip link around the last two; the first
two conv layers of the encoder are dilated by 2. The decoder upsamples with 4x4 transposed convs and
concatenates, at each scale, the encoder's features and the edge stream's decoder ("deconvolution")
features.

Edge stream: an encoder-decoder of the same shape (no dilation) maps the image and its horizontal and
vertical gradients (9 channels) to the weight maps g and p, one pair per scan direction. Multi-scale
features x = the image plus three stride-2 conv layers (1/2, 1/4, 1/8), resized back (bilinear) and
concatenated. The spatially variant RNN h[k] = g[k] x[k] + p[k] h[k-1] scans rows left-to-right and
right-to-left and columns top-to-bottom and bottom-to-top; a per-pixel max merges the four.

Parametrisation (the paper does not give one): p = sigmoid(.), in (0, 1), so propagation decays and
long scans stay bounded; g is left linear (any sign and gain): with g independent of p the gain
g / (1 - p) of a flat region is free, which is what lets the recurrence brighten (the paper's Fig. 4
argument against the unit-gain g = 1 - p).

Fusion: the content decoder's full-resolution features and the edge features are concatenated and
passed through two conv layers to the RGB output. `edge_stream=False` drops the edge stream (the
paper's "without edge stream" ablation): the content decoder then has no edge features to concatenate.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.kinds import Range, check_arguments
from hdm.ops.svrnn import four_direction_max

from .blocks import pad_rgb_input


class ConvModule(nn.Module):
    """conv (stride 2) -> ReLU -> conv -> ReLU -> conv -> ReLU, with a skip from the first ReLU."""

    def __init__(self, in_ch, out_ch, dilation=(1, 1, 1)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=dilation[0], dilation=dilation[0])
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=dilation[1], dilation=dilation[1])
        self.conv3 = nn.Conv2d(out_ch, out_ch, 3, padding=dilation[2], dilation=dilation[2])

    def forward(self, x):
        y = F.relu(self.conv1(x))
        return F.relu(self.conv3(F.relu(self.conv2(y))) + y)


def _up(in_ch, out_ch):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU(inplace=True))


def image_gradients(img):
    """Forward differences along x and y (zero at the last column / row): (B, 6, H, W)."""
    dx = F.pad(img[..., :, 1:] - img[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(img[..., 1:, :] - img[..., :-1, :], (0, 0, 0, 1))
    return torch.cat([dx, dy], dim=1)


class HybridNet(nn.Module):
    """The hybrid network's generator. width: channels at 1/2 (doubled per scale); ms_channels:
    channels of each down-conv of the multi-scale features x."""

    extra_inputs = ()
    LIMITS = {"width": Range(1, 512), "ms_channels": Range(1, 512)}  # channels (hdm.kinds); 8x width at 1/8

    def __init__(self, width=32, ms_channels=8, edge_stream=True):
        check_arguments(HybridNet, locals())
        super().__init__()
        w = width
        self.edge_stream = edge_stream
        # content stream
        self.enc1 = ConvModule(3, w, dilation=(2, 2, 1))  # the encoder's first two convs dilated by 2
        self.enc2 = ConvModule(w, 2 * w)
        self.enc3 = ConvModule(2 * w, 4 * w)
        e = 1 if edge_stream else 0  # edge decoder features concatenated at each scale
        self.up3 = _up(4 * w, 2 * w)
        self.dec2 = nn.Sequential(nn.Conv2d(2 * w * (2 + e), 2 * w, 3, padding=1), nn.ReLU(inplace=True))
        self.up2 = _up(2 * w, w)
        self.dec1 = nn.Sequential(nn.Conv2d(w * (2 + e), w, 3, padding=1), nn.ReLU(inplace=True))
        self.up1 = _up(w, w)
        self.dec0 = nn.Sequential(nn.Conv2d(w * (1 + e), w, 3, padding=1), nn.ReLU(inplace=True))
        x_ch = 3 + 3 * ms_channels
        if edge_stream:
            # edge stream: weight-map encoder-decoder on the image and its gradients
            self.edge_enc1 = ConvModule(9, w)
            self.edge_enc2 = ConvModule(w, 2 * w)
            self.edge_enc3 = ConvModule(2 * w, 4 * w)
            self.edge_up3 = _up(4 * w, 2 * w)
            self.edge_dec2 = nn.Sequential(nn.Conv2d(4 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True))
            self.edge_up2 = _up(2 * w, w)
            self.edge_dec1 = nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU(inplace=True))
            self.edge_up1 = _up(w, w)
            self.weight_maps = nn.Conv2d(w, 2 * 4 * x_ch, 3, padding=1)  # g and p for four directions
            # multi-scale features x
            self.ms1 = nn.Conv2d(3, ms_channels, 3, stride=2, padding=1)
            self.ms2 = nn.Conv2d(ms_channels, ms_channels, 3, stride=2, padding=1)
            self.ms3 = nn.Conv2d(ms_channels, ms_channels, 3, stride=2, padding=1)
        self.fuse = nn.Sequential(nn.Conv2d(w + (x_ch if edge_stream else 0), w, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(w, 3, 3, padding=1))

    def multiscale(self, img):
        """The image and its 1/2, 1/4, 1/8 down-convolutions resized back: (B, 3 + 3 ms, H, W)."""
        m1 = F.relu(self.ms1(img))
        m2 = F.relu(self.ms2(m1))
        m3 = F.relu(self.ms3(m2))
        size = img.shape[-2:]
        return torch.cat([img] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                                  for m in (m1, m2, m3)], dim=1)

    def forward(self, lq):
        """lq: RGB (B, 3, H, W) in [0, 1], any size -> enhanced (B, 3, H, W)."""
        x, (h, w) = pad_rgb_input(lq, 8, "HybridNet")
        if not self.edge_stream:
            return self.fuse(self.streams(x)[0])[..., :h, :w]
        u0, ms, g, p = self.streams(x)
        return self.fuse(torch.cat([u0, four_direction_max(ms, g, p)], dim=1))[..., :h, :w]

    def streams(self, x):
        """The local part (convolutions only) of a padded input (sides multiples of 8): the content
        stream's last features u0 and, with the edge stream, the RNN's inputs: the multi-scale
        features x and the weights g and p (sigmoid applied) of the four directions. The RNN scans
        whole rows and columns; hdm.inference.restore tiles this part and runs the scans on strips."""
        c1 = self.enc1(x)
        c2 = self.enc2(c1)
        c3 = self.enc3(c2)
        if not self.edge_stream:
            u2 = self.dec2(torch.cat([self.up3(c3), c2], dim=1))
            u1 = self.dec1(torch.cat([self.up2(u2), c1], dim=1))
            return (self.dec0(self.up1(u1)),)
        e1 = self.edge_enc1(torch.cat([x, image_gradients(x)], dim=1))
        e2 = self.edge_enc2(e1)
        e3 = self.edge_enc3(e2)
        d2 = self.edge_dec2(torch.cat([self.edge_up3(e3), e2], dim=1))  # 1/4
        d1 = self.edge_dec1(torch.cat([self.edge_up2(d2), e1], dim=1))  # 1/2
        d0 = self.edge_up1(d1)  # 1
        g, p = self.weight_maps(d0).chunk(2, dim=1)
        u2 = self.dec2(torch.cat([self.up3(c3), c2, d2], dim=1))
        u1 = self.dec1(torch.cat([self.up2(u2), c1, d1], dim=1))
        u0 = self.dec0(torch.cat([self.up1(u1), d0], dim=1))
        return u0, self.multiscale(x), g, torch.sigmoid(p)


class Discriminator(nn.Module):
    """The discriminator of the paper's Table I: ten convs, LeakyReLU (0.2) after each but the last,
    5x5 stride-2 and 3x3 stride-1 layers alternating (32, 64, 64, 128, 128, 256, 256, 512, 512 channels
    for width=32, the paper's), then a 4x4 conv to one channel. Returns logits (the sigmoid of Table I is applied inside the loss,
    `binary_cross_entropy_with_logits`, which is the same function computed stably). A 128 x 128 input
    gives one logit; larger inputs give a map of logits, averaged by the loss."""

    extra_inputs = ()
    # (channel multiple of width, kernel, stride) of the nine LeakyReLU convs; then a 4x4 conv to one logit
    LAYERS = ((1, 5, 2), (2, 3, 1), (2, 5, 2), (4, 3, 1), (4, 5, 2), (8, 3, 1), (8, 5, 2), (16, 3, 1), (16, 5, 2))
    LAST_KERNEL = 4
    # the input side that the strides reduce to the last kernel's 4 x 4 (Table I's 128): one logit
    MIN_INPUT_SIDE = LAST_KERNEL * math.prod(s for _, _, s in LAYERS)
    LIMITS = {"in_channels": Range(1, 64), "width": Range(1, 256)}  # hdm.kinds; 16 x width channels at the end

    def __init__(self, in_channels=3, width=32):
        check_arguments(Discriminator, locals())
        super().__init__()
        layers, ch = [], in_channels
        for mult, k, s in self.LAYERS:
            out_ch = width * mult
            layers += [nn.Conv2d(ch, out_ch, k, stride=s, padding=k // 2), nn.LeakyReLU(0.2, inplace=True)]
            ch = out_ch
        layers.append(nn.Conv2d(ch, 1, self.LAST_KERNEL))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        side = self.MIN_INPUT_SIDE
        if x.shape[-1] < side or x.shape[-2] < side:
            raise ValueError(f"the discriminator needs inputs of at least {side} x {side}, got {tuple(x.shape[-2:])}")
        return self.net(x)
