"""HDM: Learning Hierarchical Dynamics with Spatial Adjacency for Image Enhancement.

Liang, Wang, Ren, Liu, Wang, Zuo. ACM MM 2022. The network as released (class `DR_Net_phy`):

    conv0 (5x5) -> conv1 (s2) -> conv2 (s2)                                   encoder, 1 -> 1/4
    dynamic stages at 1/4, in the order of `stages`:
        P  channel-spatial level: `groups` FA groups of `blocks_per_group` blocks, then ReLU
        S  structure level: a modulated deformable conv (DCNv2)
        R  region level: the region conv with DCP-guided (or learned) masks
       a repeated letter reuses the same module: the release is "PSRSR"
    mix1(conv2 features) -> deconv1 -> mix2(conv1 features) -> deconv2 -> three 5x5 convs -> tanh

The model takes RGB in [0, 1], normalises it inside, pads to a multiple of 4 and crops back, and
computes the DCP region masks from its input when none are given. Region masks can also come from a
transmission map the dataset supplies (`region="depth"`, the paper's Table 6 "GT depth" row):
`extra_inputs` names the batch keys `forward` then needs.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from hdm.kinds import Keywords, Letters, OneOf, Range, check_arguments
from hdm.ops.dcp import bin_masks, dark_channel, dcp_region_masks, dcp_transmission, downscale
from hdm.ops.deform_conv import BACKEND_HERE

from .blocks import REGION_CONV_STRATEGIES, DCNBlock, FAGroup, Mix, RegionConv, conv, pad_rgb_input

STAGE_LETTERS = "PSR"
REGION_SOURCES = ("dcp", "learned", "depth")
SKIPS = ("mix", "add", "none")
OUT_ACTS = ("tanh", "none")


class ReflectAvgPool(nn.Module):
    """ReflectionPad2d((1, 0, 1, 0)) then AvgPool2d(2, stride=1), as the release's upsampler applies
    them: out[i, j] = mean of x[i - 1:i + 1, j - 1:j + 1] with index -1 read as 1, so row 0 equals
    row 1 and column 0 equals column 1. Computed without the reflected copy (equal up to rounding):
    in channels_last as a zero-padded pooling whose row 0 and column 0 are then overwritten by row 1
    and column 1, otherwise as two shifted in-place sums (the faster way for each layout on CPU,
    1.7x and 2.5x). An exported graph (hdm.export) pads and pools as written: the in-place forms
    become scatters and transposes of the whole map in ONNX."""

    def forward(self, x):
        if torch.compiler.is_exporting():
            return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="reflect"), 2, stride=1)
        if x.is_contiguous(memory_format=torch.channels_last):
            out = F.avg_pool2d(F.pad(x, (1, 0, 1, 0)), 2, stride=1)
            out[..., 0, :] = out[..., 1, :]
            out[..., :, 0] = out[..., :, 1]
            return out
        cols = x.clone()
        cols[..., :, 1:] += x[..., :, :-1]
        cols[..., :, 0] += x[..., :, 1]
        out = cols.clone()
        out[..., 1:, :] += cols[..., :-1, :]
        out[..., 0, :] += cols[..., 1, :]
        return out.mul_(0.25)


def _upsample(dim):
    """ConvTranspose 4x4 s2, then reflection-pad (1, 0, 1, 0) and a 2x2 stride-1 average (anti-aliasing)."""
    return nn.Sequential(nn.ConvTranspose2d(dim, dim, 4, 2, 1), ReflectAvgPool(), nn.ReLU(inplace=True))


class HDM(nn.Module):
    """HDM as released; every constructor argument is a plain value and is used.

    Args:
        dim: channels throughout (64).
        groups, blocks_per_group: the P level's FA groups and blocks per group (3, 9 as released;
            the paper's Table 5 counts correspond to 7).
        stages: the dynamic part as a string over P, S, R; a repeated letter reuses its module.
        region: where the R level's masks come from: 'dcp' (the dark channel prior), 'learned'
            (HDM-F, DRConv's guide conv) or 'depth' (bins of a transmission map passed as `trans`).
        num_regions: N, the number of regions (5).
        skip: encoder-to-decoder connections: 'mix' (adaptive mixup, the release), 'add' (plain
            sum) or 'none'.
        input_mean, input_std: input normalisation of the release.
        out_act: 'tanh' (release) or 'none'.
        dcn_backend: deformable-conv backend ('auto', 'torch', 'torchvision', 'mmcv').
        dcp_options: keyword overrides for `hdm.ops.dcp.dcp_region_masks` (patch, omega, radii, ...).
        checkpoint_groups: recompute each FA group in the backward pass instead of keeping its
            activations (training memory for compute; results are unchanged).
        region_strategy: how the region conv is computed ('auto', 'masked_sum' as released,
            'per_region'; see blocks.RegionConv); results are equal up to float rounding.
    """

    # the limits of the arguments (hdm.kinds): dim >= 8 keeps a channel in the attention layers' C/8;
    # parameters grow as dim^2 (2.8 M at 64), so 1024 is far beyond any use; 64 groups or blocks build
    # twenty times the release's depth; the DCP keywords are those of dcp_transmission but the
    # downscale, which the R level fixes at 1/4
    LIMITS = {"dim": Range(8, 1024), "groups": Range(1, 64), "blocks_per_group": Range(0, 64),
              "stages": Letters(STAGE_LETTERS), "region": OneOf(REGION_SOURCES), "num_regions": Range(1, 64),
              "skip": OneOf(SKIPS), "input_mean": Range(0, 1), "input_std": Range(0, 1, low_open=True),
              "out_act": OneOf(OUT_ACTS), "dcn_backend": BACKEND_HERE,
              "dcp_options": Keywords(dcp_transmission, ("img", "downscale_factor")),
              "region_strategy": OneOf(REGION_CONV_STRATEGIES)}

    def __init__(self, dim=64, groups=3, blocks_per_group=9, stages="PSRSR", region="dcp", num_regions=5,
                 skip="mix", input_mean=(0.64, 0.6, 0.58), input_std=(0.14, 0.15, 0.152), out_act="tanh",
                 dcn_backend="auto", dcp_options: Optional[dict] = None, checkpoint_groups=False,
                 region_strategy="auto"):
        check_arguments(HDM, locals())
        super().__init__()
        self.stages, self.region, self.num_regions, self.skip, self.out_act = stages, region, num_regions, skip, out_act
        self.dcp_options = dict(dcp_options or {})
        self.checkpoint_groups = checkpoint_groups
        # not persistent: the state dict keeps exactly the released key set
        self.register_buffer("input_mean", torch.tensor(input_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("input_std", torch.tensor(input_std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

        self.conv0 = nn.Sequential(nn.Conv2d(3, dim, 5, 1, 2), nn.ReLU(inplace=True))
        self.conv1 = nn.Sequential(conv(dim, dim, 3), conv(dim, dim, 3, stride=2), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv(dim, dim, 3), conv(dim, dim, 3, stride=2), nn.ReLU(inplace=True))
        # ---- hierarchical dynamics at 1/4 resolution (module names as in the release) ----
        if "P" in stages:
            self.FAB = nn.Sequential(*[FAGroup(dim, blocks_per_group) for _ in range(groups)], nn.ReLU(inplace=True))
        if "S" in stages:
            self.dcn_block = DCNBlock(dim, dim, backend=dcn_backend)
        if "R" in stages:
            region_conv = RegionConv(dim, num_regions, 3, learned_guide=(region == "learned"), strategy=region_strategy)
            if region == "learned":
                self.drconv = region_conv
            else:
                self.drconv_phy = region_conv
        if skip == "mix":
            self.mix1 = Mix(-1.0)
            self.mix2 = Mix(-0.6)
        self.deconv1 = _upsample(dim)
        self.deconv2 = _upsample(dim)
        self.output = nn.Sequential(conv(dim, dim, 5), conv(dim, dim, 5), conv(dim, 3, 5))

    @property
    def extra_inputs(self):
        """Batch keys forward() needs besides lq: ('trans',) for depth-binned region masks."""
        return ("trans",) if "R" in self.stages and self.region == "depth" else ()

    def _stage(self, letter):
        if letter == "P":
            return self.FAB
        if letter == "S":
            return self.dcn_block
        return self.drconv if self.region == "learned" else self.drconv_phy

    def region_masks(self, lq, trans=None):
        """Region masks (B, N, H/4, W/4) of an RGB batch in [0, 1] whose sides are multiples of 4: from
        the dark channel prior (region='dcp') or N equal bins of `trans` (B, 1, H, W) (region='depth');
        None when the masks are learned or there is no R level. Computed in float32 or wider, also
        under autocast (bins must not move with precision). hdm.inference.compile_model keeps them
        eager under torch.compile."""
        if "R" not in self.stages or self.region == "learned":
            return None
        with torch.autocast(device_type=lq.device.type, enabled=False):
            if self.region == "dcp":
                x = lq if lq.dtype in (torch.float32, torch.float64) else lq.float()
                return dcp_region_masks(x, num_regions=self.num_regions, **self.dcp_options)
            if trans is None or trans.shape != (lq.shape[0], 1, *lq.shape[-2:]):
                raise ValueError(f"region='depth' needs trans of shape {(lq.shape[0], 1, *lq.shape[-2:])}, "
                                 f"got {None if trans is None else tuple(trans.shape)}")
            return bin_masks(downscale(trans.float(), 4, mode="area"), self.num_regions)

    @torch.no_grad()
    def maps(self, lq):
        """Maps for figures (paper Fig. 1): the input's dark channel (full size, 15 x 15), the refined
        DCP transmission (1/4) and the region masks (B, N, h, w) when the regions come from the DCP."""
        if self.region != "dcp":
            return {}
        x, _ = pad_rgb_input(lq, 4, "HDM")
        opts = dict(self.dcp_options)
        return {"dark_channel": dark_channel(lq, opts.get("patch", 15)),
                "transmission": dcp_transmission(x, **opts).clamp(0, 1), "regions": self.region_masks(x)}

    def _merge(self, level, skip, x):
        """Encoder features `skip` joined to decoder features x at mix level 1 (1/4) or 2 (1/2)."""
        if self.skip == "mix":
            return (self.mix1 if level == 1 else self.mix2)(skip, x)
        return skip + x if self.skip == "add" else x

    def forward(self, lq, mask=None, trans=None):
        """lq: RGB (B, 3, H, W) in [0, 1], any H, W. mask: optional one-hot (B, N, ceil(H/4), ceil(W/4)).
        trans: (B, 1, H, W) transmission map, required by region='depth' when no mask is given
        (its N equal bins after a 1/4 area resize are the regions, the largest t being region 0).

        Returns the restored image (B, 3, H, W) (tanh range; metrics clamp to [0, 1])."""
        x, (h, w) = pad_rgb_input(lq, 4, "HDM")
        if mask is None:
            if trans is not None and x.shape[-2:] != (h, w):
                trans = F.pad(trans, (0, x.shape[-1] - w, 0, x.shape[-2] - h), mode="replicate")
            mask = self.region_masks(x, trans)

        return self.decode(*self.middle(*self.encode(x), mask=mask))[..., :h, :w]

    # forward = encode -> middle -> decode. The encoder and decoder are local (convolutions at 1/1, 1/2,
    # 1/4), the middle (the P, S, R levels at 1/4) is global: FA blocks pool channel attention over the
    # whole image. hdm.inference.restore tiles the local parts and runs the middle on the whole image.

    def encode(self, x):
        """Padded RGB (B, 3, H, W), sides multiples of 4 -> (features at 1/4, skips)."""
        x = (x - self.input_mean) / self.input_std
        res1 = self.conv1(self.conv0(x))
        res2 = self.conv2(res1)
        return res2, (res1, res2)

    def middle(self, x, skips, mask=None):
        """The P, S, R levels at 1/4 (mask: the region masks of the R level); skips pass through."""
        for letter in self.stages:
            if letter == "R":
                x = self._stage(letter)(x, mask)
            elif letter == "P" and self.checkpoint_groups and self.training:
                for group in self.FAB[:-1]:
                    x = checkpoint(group, x, use_reentrant=False)
                x = F.relu(x)  # the stage's closing ReLU, not in place on a checkpointed output
            else:
                x = self._stage(letter)(x)
        return x, skips

    def decode(self, x, skips):
        """Features at 1/4 and the encoder's skips -> the restored image (tanh range)."""
        res1, res2 = skips
        x = self.deconv1(self._merge(1, res2, x))
        x = self.deconv2(self._merge(2, res1, x))
        x = self.output(x)
        return torch.tanh(x) if self.out_act == "tanh" else x
