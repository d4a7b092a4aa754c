"""Inference on images of any size: whole, or in overlapping tiles for large images.

Tiled inference keeps HDM's region masks global: the DCP masks depend on the whole image (their bins
are min-max normalised over it), so they are computed once on the whole (padded) image and each tile
receives its slice. Tiles start on a grid of multiples of 4 (the masks' resolution) and overlapping
outputs are blended with linear ramps.
"""

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hdm.checkpoint import load_checkpoint, model_differences, model_weights, stored_run_config
from hdm.device import memory_format
from hdm.errors import NonFiniteOutput, shown
from hdm.models import build_model, count_parameters


def load_model(model_cfg, weights, device, fmt="auto"):
    """A model from its config with a checkpoint's weights, in eval mode on `device` in memory format
    `fmt` (hdm.device.memory_format: 'auto' = the faster one for the device). Parameter-free models
    (DCP, PF-DCP) take weights=None. Raises ValueError naming the file when weights are missing or do
    not fit. A checkpoint with EMA weights (train.ema_decay) gives those, as validation used them."""
    model = build_model(model_cfg)
    if weights is None:
        if count_parameters(model):
            raise ValueError(f"{model_cfg['type']} has parameters: a weights file is needed")
    else:
        try:
            ckpt = load_checkpoint(weights)
            state = model_weights(ckpt, weights)[0]
        except RuntimeError as err:  # unreadable, or not a checkpoint of this project: the message says which
            raise ValueError(str(err)) from err
        differ = model_differences(model_cfg, ckpt)
        if differ:
            stored = stored_run_config(ckpt)["model"]
            said = ", ".join(f"{k}={model_cfg.get(k)!r} (trained as {stored.get(k)!r})" for k in differ[:3])
            raise ValueError(f"{shown(weights)}: the config's model differs from the one these weights were trained "
                             f"as: {said}; make them agree (hdm-predict and hdm-export without -c use the stored config)")
        misfit = weights_misfit(state, model.state_dict())
        if misfit:
            raise ValueError(f"{shown(weights)}: weights do not fit model {model_cfg['type']}: {misfit}")
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{shown(weights)}: weights do not fit model {model_cfg['type']} "
                             f"({str(err).splitlines()[0]})") from err
    return model.to(device, memory_format=memory_format(fmt, device)).eval()


def weights_misfit(state, ours):
    """How a state dict differs from a model's (`ours`), in one line naming the first key of each kind of
    difference (missing, unexpected, shape, integer for float weights); None when it fits."""
    missing = [k for k in ours if k not in state]
    extra = [k for k in state if k not in ours]
    shapes = [k for k in state if k in ours and tuple(state[k].shape) != tuple(ours[k].shape)]
    rounded = [k for k in state if k in ours and ours[k].is_floating_point() and not state[k].is_floating_point()]
    said = []
    if extra and all(k.startswith("module.") for k in extra) and {k[len("module."):] for k in extra} >= set(missing):
        return "every key starts with 'module.' (weights saved from a DataParallel model: convert them with " \
               "scripts/convert_official.py, or strip the prefix)"
    if missing:
        said.append(f"{len(missing)} weight(s) missing, e.g. {missing[0]} {tuple(ours[missing[0]].shape)}")
    if extra:
        said.append(f"{len(extra)} the model does not have, e.g. {extra[0]}")
    if shapes:
        k = shapes[0]
        said.append(f"{len(shapes)} of another shape, e.g. {k} is {tuple(state[k].shape)} in the file, "
                    f"{tuple(ours[k].shape)} in the model")
    if rounded:
        said.append(f"{rounded[0]} holds {state[rounded[0]].dtype} values where the model has floating-point weights")
    return "; ".join(said) or None


def clamp_finite(out):
    """`out` clamped to [0, 1]; NonFiniteOutput when a value is NaN or infinite (a clamp alone would turn
    an infinity into 0 or 1). Every restored image passes here: restore, its tiles, the ensemble and
    hdm.evaluation.evaluate."""
    bad = out.numel() - int(torch.isfinite(out).sum())
    if bad:
        raise NonFiniteOutput(f"{bad} of {out.numel()} output values are NaN or infinite")
    return out.clamp(0, 1)


def _dihedral(x, k, flip):
    return torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))


def _undo_dihedral(x, k, flip):
    x = torch.rot90(x, -k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def self_ensemble(fn, lq, **extras):
    """The mean of fn's outputs (clamped to [0, 1]) over the 8 flips and 90-degree rotations of its
    input, each mapped back; extra inputs (a transmission map) are transformed alike."""
    total = 0
    for k in range(4):
        for flip in (False, True):
            out = fn(_dihedral(lq, k, flip), **{n: _dihedral(v, k, flip) for n, v in extras.items()})
            total = total + _undo_dihedral(clamp_finite(out.float()), k, flip)
    return total / 8


class SelfEnsemble(torch.nn.Module):
    """x8 self-ensemble of a model (as offered by mmagic, KAIR and Retinexformer; Lim et al. EDSR
    2017): self_ensemble of its forward. 8 times the work of one pass."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.extra_inputs = getattr(model, "extra_inputs", ())

    def forward(self, lq, **extras):
        return self_ensemble(self.model, lq, **extras)


def compile_model(model):
    """torch.compile(model), with HDM's region masks left eager: they take a few milliseconds, and
    compiling their float64 histogram is slow and crashes GCC 12. (Not a decorator on the method:
    importing the compiler machinery at module import makes gloo process groups hang at exit.)"""
    if hasattr(model, "region_masks"):
        model.region_masks = torch.compiler.disable(model.region_masks)
    return torch.compile(model)


def colour_maps(maps, size):
    """{name: (H, W, 3) uint8 RGB}: continuous maps (B=1, 1, h, w) in [0, 1] through the jet colour map,
    region masks (1, N, h, w) as one colour per region; all resized (nearest) to size (H, W)."""
    out = {}
    for name, m in maps.items():
        if m.shape[1] == 1:
            grey = (m[0, 0].float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
            img = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        else:
            regions = m[0].argmax(0).cpu().numpy()
            palette = cv2.cvtColor(cv2.applyColorMap(np.linspace(0, 255, m.shape[1]).astype(np.uint8)[:, None],
                                                     cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[:, 0]
            img = palette[regions]
        out[name] = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return out


def _starts(size, tile, step):
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(n, overlap, dtype, device):
    """1 in the middle, rising linearly over `overlap` pixels at both ends (never exactly 0)."""
    w = torch.ones(n, dtype=dtype, device=device)
    if overlap > 0 and n > 2 * overlap:
        ramp = (torch.arange(overlap, dtype=dtype, device=device) + 1) / (overlap + 1)
        w[:overlap], w[-overlap:] = ramp, ramp.flip(0)
    return w


def _replicate_pad(x, pad_h, pad_w):
    """Pad the bottom and right by repeating the last row and column (any dtype, uint8 included)."""
    if not (pad_h or pad_w):
        return x
    h, w = x.shape[-2:]
    rows = torch.arange(h + pad_h, device=x.device).clamp_(max=h - 1)
    cols = torch.arange(w + pad_w, device=x.device).clamp_(max=w - 1)
    return x[..., rows, :][..., cols]


def _unit(x):
    """A uint8 image tensor as float32 in [0, 1]; a float one as it is."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


@torch.no_grad()
def restore(model, lq, tile=None, overlap=48, ensemble=False, **extras):
    """Run `model` on lq (B, 3, H, W): float in [0, 1], or uint8 (converted whole, or tile by tile when
    tiling, so a large image stays a quarter of the size until a tile needs it; HDM's masks still need
    the whole image once). tile: None (whole image) or the tile side in pixels. ensemble: the x8
    self_ensemble, each transform restored whole or tiled as asked."""
    if ensemble:
        return self_ensemble(lambda x, **moved: restore(model, x, tile, overlap, **moved), lq, **extras)
    if tile is None:
        return clamp_finite(model(_unit(lq), **extras))
    if tile % 4 or overlap % 4 or not 0 <= overlap < tile:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of 4 with 0 <= overlap < tile")
    b, _, h, w = lq.shape
    pad_h, pad_w = (-h) % 4, (-w) % 4
    x = _replicate_pad(lq, pad_h, pad_w)
    extras = {k: F.pad(v, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else v for k, v in extras.items()}
    mask = model.region_masks(_unit(x), **extras) if hasattr(model, "region_masks") else None
    if hasattr(model, "encode") and hasattr(model, "middle") and hasattr(model, "decode"):
        out = _restore_split(model, x, tile, overlap, mask)
    elif getattr(model, "edge_stream", False):
        out = _restore_strips(model, x, tile, overlap)
    else:
        out = _restore_blended(model, x, tile, overlap, mask, extras)
    return out[..., :h, :w]


def _spans(size, tile, overlap, unit=4):
    """[(start, stop, core_start, core_stop)] of the tiles along one axis (all multiples of `unit`): the
    tiles overlap by at least `overlap`, and their cores (boundaries in the middle of each overlap)
    partition [0, size)."""
    starts = _starts(size, min(tile, size), min(tile, size) - overlap)
    spans, core_start = [], 0
    for i, start in enumerate(starts):
        stop = min(start + tile, size)
        core_stop = size if i == len(starts) - 1 else (stop + starts[i + 1]) // (2 * unit) * unit
        spans.append((start, stop, core_start, core_stop))
        core_start = core_stop
    return spans


def _restore_split(model, x, tile, overlap, mask):
    """Tiles for the local encoder and decoder, the whole image for the global middle (HDM, AECR-Net:
    the FA blocks' channel attention pools over the whole image, as without tiling). Each output pixel
    comes from the core of one tile, at least overlap / 2 from its edge. The middle runs on the
    1/4-resolution features of the whole image: a 4K image's are 33 M values per channel group."""
    b, _, hp, wp = x.shape
    rows, cols = _spans(hp, tile, overlap), _spans(wp, tile, overlap)
    tiles = [(r, c) for r in rows for c in cols]

    def encode(r, c):
        return model.encode(_unit(x[:, :, r[0]:r[1], c[0]:c[1]]))

    def core(r, c, scale):  # the core of a tile: in the tile's coordinates, and in the image's
        inside = (slice(None), slice(None), slice((r[2] - r[0]) // scale, (r[3] - r[0]) // scale),
                  slice((c[2] - c[0]) // scale, (c[3] - c[0]) // scale))
        return inside, (slice(None), slice(None), slice(r[2] // scale, r[3] // scale), slice(c[2] // scale, c[3] // scale))

    features = None
    for r, c in tiles:  # 1. the encoder, tile by tile: the 1/4-resolution features of the whole image
        piece, _ = encode(r, c)
        if features is None:
            features = piece.new_empty(b, piece.shape[1], hp // 4, wp // 4)
        inside, where = core(r, c, 4)
        features[where] = piece[inside]
    middle, _ = model.middle(features, None, **({"mask": mask} if mask is not None else {}))
    out = torch.empty(b, 3, hp, wp, dtype=torch.float32, device=x.device)
    for r, c in tiles:  # 2. the decoder, tile by tile, with the encoder's skips of the same tile
        _, skips = encode(r, c)
        piece = model.decode(middle[:, :, r[0] // 4:r[1] // 4, c[0] // 4:c[1] // 4], skips)
        inside, where = core(r, c, 1)
        out[where] = clamp_finite(piece[inside].float())
    return out


def _restore_strips(model, x, tile, overlap):
    """The hybrid network: its spatial RNN scans whole rows (left-right, right-left) and whole columns
    (top-bottom, bottom-top), so the scans run on full-width and full-height strips of the local
    part's outputs, and the rest (convolutions) on tiles. Exact up to float rounding when the overlap
    covers the local part's receptive field. Tiles and strips are multiples of 8 (the network's
    1/8 scale): the tile rounded down, the overlap up, the tile at least 8 more than the overlap."""
    from hdm.ops.svrnn import DIRECTIONS, spatial_rnn

    b, _, h4, w4 = x.shape
    x = _replicate_pad(x, (-h4) % 8, (-w4) % 8)
    hp, wp = x.shape[-2:]
    overlap = -(-overlap // 8) * 8
    tile = max(tile // 8 * 8, overlap + 8)  # 8 rounds a tile of 52 and an overlap of 48 to one step of 0
    rows, cols = _spans(hp, tile, overlap, 8), _spans(wp, tile, overlap, 8)
    whole = (0, hp, 0, hp), (0, wp, 0, wp)
    edges = None
    for axis, spans, directions in ((0, rows, DIRECTIONS[:2]), (1, cols, DIRECTIONS[2:])):
        for span in spans:  # full-width strips for the horizontal scans, full-height for the vertical
            r, c = (span, whole[1]) if axis == 0 else (whole[0], span)
            _, ms, g, p = model.streams(_unit(x[:, :, r[0]:r[1], c[0]:c[1]]))
            inside = (slice(None), slice(None), slice(r[2] - r[0], r[3] - r[0]), slice(c[2] - c[0], c[3] - c[0]))
            where = (slice(None), slice(None), slice(r[2], r[3]), slice(c[2], c[3]))
            gs, ps = g.chunk(4, dim=1), p.chunk(4, dim=1)
            scans = [spatial_rnn(ms, gs[DIRECTIONS.index(d)], ps[DIRECTIONS.index(d)], d)[inside] for d in directions]
            strip = scans[0].maximum(scans[1])
            if edges is None:
                edges = strip.new_full((b, strip.shape[1], hp, wp), float("-inf"))
            edges[where] = edges[where].maximum(strip)
    out = torch.empty(b, 3, hp, wp, dtype=torch.float32, device=x.device)
    for r in rows:  # the convolutions around the scans, tile by tile
        for c in cols:
            u0 = model.streams(_unit(x[:, :, r[0]:r[1], c[0]:c[1]]))[0]
            piece = model.fuse(torch.cat([u0, edges[:, :, r[0]:r[1], c[0]:c[1]]], dim=1))
            inside = (slice(None), slice(None), slice(r[2] - r[0], r[3] - r[0]), slice(c[2] - c[0], c[3] - c[0]))
            out[:, :, r[2]:r[3], c[2]:c[3]] = clamp_finite(piece[inside].float())
    return out[..., :h4, :w4]


def _restore_blended(model, x, tile, overlap, mask, extras):
    """Overlapping tiles through the whole model, blended with linear ramps (models without a
    local/global split: the hybrid network, DCP). HDM's masks stay global when given."""
    b, _, hp, wp = x.shape
    out = torch.zeros(b, 3, hp, wp, dtype=torch.float32, device=x.device)
    weight = torch.zeros(1, 1, hp, wp, dtype=torch.float32, device=x.device)
    th, tw = min(tile, hp), min(tile, wp)
    for top in _starts(hp, th, th - overlap):
        for left in _starts(wp, tw, tw - overlap):
            window = (slice(None), slice(None), slice(top, top + th), slice(left, left + tw))
            kwargs = {k: v[window] for k, v in extras.items()}
            if mask is not None:
                kwargs["mask"] = mask[:, :, top // 4:(top + th) // 4, left // 4:(left + tw) // 4]
            piece = clamp_finite(model(_unit(x[window]), **kwargs).float())
            wgt = _ramp(th, overlap, torch.float32, x.device).view(-1, 1) * _ramp(tw, overlap, torch.float32, x.device)
            out[window] += piece * wgt
            weight[window] += wgt
    return out / weight
