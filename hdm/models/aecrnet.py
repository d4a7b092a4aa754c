"""AECR-Net: Contrastive Learning for Compact Single Image Dehazing (Wu et al., CVPR 2021).

The released network (class `Dehaze(3, 3)`), with the release's module names:

    deconv (FastDeconv 3->3) -> down1 (reflect-pad 3, 7x7 3->64) -> down2 (s2 ->128) -> down3 (s2 ->256)
    one FA block applied `block_repeats` (6) times with shared weights
    DFE: one DCN 256->256 applied twice with shared weights
    mix1(down3) -> up1 (ConvT s2 ->128) -> mix2(down2) -> up2 (ConvT s2 ->64) -> up3 (reflect-pad 3, 7x7 ->3, tanh)

Ablations of the paper's Table 2 are constructor arguments: `skip` ('mix' adaptive mixup, 'add' the
plain skip connection SC, 'none'), `dfe` (the deformable convs on/off) and `block_repeats`.
"""
import torch.nn as nn

from hdm.kinds import OneOf, Range, check_arguments
from hdm.ops.deform_conv import BACKEND_HERE

from .blocks import DCNBlock, FABlock, Mix, pad_rgb_input
from .fast_deconv import FastDeconv

SKIPS = ("mix", "add", "none")


class AECRNet(nn.Module):
    """AECR-Net as released (2,614,229 parameters at the defaults); input RGB in [0, 1], any size."""

    extra_inputs = ()  # forward needs nothing besides the image

    # limits of the arguments (hdm.kinds): ngf >= 2 keeps a channel in the FA block's (4 ngf) / 8;
    # parameters grow as ngf^2 (2.6 M at 64); the FA block's repeats share weights, 64 is ten times the release
    LIMITS = {"ngf": Range(2, 512), "block_repeats": Range(0, 64), "skip": OneOf(SKIPS),
              "dcn_backend": BACKEND_HERE}

    def __init__(self, ngf=64, block_repeats=6, dfe=True, skip="mix", dcn_backend="auto"):
        check_arguments(AECRNet, locals())
        super().__init__()
        self.block_repeats, self.dfe, self.skip = block_repeats, dfe, skip
        self.deconv = FastDeconv(3, 3, kernel_size=3, stride=1, padding=1)
        self.down1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.ReLU(inplace=True))
        self.down2 = nn.Sequential(nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.down3 = nn.Sequential(nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.block = FABlock(ngf * 4)
        if dfe:
            self.dcn_block = DCNBlock(ngf * 4, ngf * 4, backend=dcn_backend)
        if skip == "mix":
            self.mix1 = Mix(-1.0)
            self.mix2 = Mix(-0.6)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1),
                                 nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1),
                                 nn.ReLU(inplace=True))
        self.up3 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def _merge(self, level, skip, x):
        if self.skip == "mix":
            return (self.mix1 if level == 1 else self.mix2)(skip, x)
        return skip + x if self.skip == "add" else x

    def forward(self, lq):
        """lq: RGB (B, 3, H, W) in [0, 1] -> restored (B, 3, H, W) (tanh range)."""
        x, (h, w) = pad_rgb_input(lq, 4, "AECRNet")
        return self.decode(*self.middle(*self.encode(x)))[..., :h, :w]

    # forward = encode -> middle -> decode: local convolutions around a global middle (the shared FA
    # block pools channel attention over the whole image); hdm.inference.restore tiles the local parts.

    def encode(self, x):
        """Padded RGB (B, 3, H, W), sides multiples of 4 -> (features at 1/4, skips)."""
        d2 = self.down2(self.down1(self.deconv(x)))
        d3 = self.down3(d2)
        return d3, (d2, d3)

    def middle(self, x, skips):
        """The shared FA block (block_repeats times) and the DFE at 1/4; skips pass through."""
        for _ in range(self.block_repeats):
            x = self.block(x)
        if self.dfe:
            x = self.dcn_block(self.dcn_block(x))
        return x, skips

    def decode(self, x, skips):
        d2, d3 = skips
        x = self.up1(self._merge(1, d3, x))
        x = self.up2(self._merge(2, d2, x))
        return self.up3(x)
