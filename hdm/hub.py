"""The models behind hubconf.py (torch.hub.load(..., "hdm" | "aecrnet" | "hybrid" | "dcp" | "pfdcp")).

Each returns a HubModel (an hdm.export.Deployed that checks what it gets): forward(image) takes RGB
(B, 3, H, W) in [0, 1] of any size and returns RGB in [0, 1], in eval mode on the CPU (move it with
.to(device)). The image must be a float tensor of that shape with finite values in [0, 1], of the dtype
and on the device of the model's weights when it has any; anything else is a ValueError of one line
saying what was expected and what came. An output that is not finite is a ValueError naming the weights.
With weights, the model's config is the one stored in the checkpoint (keyword arguments override it);
without weights a model with parameters is untrained: it says so in a warning and in `trained` (False).
"""
import copy
import warnings

import torch

from hdm.checkpoint import load_checkpoint, stored_run_config
from hdm.errors import NonFiniteOutput, shown
from hdm.export import Deployed
from hdm.inference import clamp_finite, load_model
from hdm.models import build_model

ENTRIES = {"hdm": "HDM", "aecrnet": "AECRNet", "hybrid": "HybridNet", "dcp": "DCP", "pfdcp": "PFDCP"}


PARAMETER_FREE = ("DCP", "PFDCP")


def check_image(image, weights=None):
    """ValueError of one line unless `image` is a float tensor (B, 3, H, W), none of them 0, with finite
    values in [0, 1]; with `weights` (a parameter of the model), of its dtype and on its device."""
    if not isinstance(image, torch.Tensor):
        hint = ""
        if type(image).__module__ == "numpy":
            hint = " (torch.from_numpy(x).permute(2, 0, 1)[None] / 255 for an 8-bit H x W x 3 array)"
        raise ValueError(f"image: expected a torch.Tensor (B, 3, H, W), got {type(image).__name__}{hint}")
    shape = tuple(image.shape)
    if not image.is_floating_point():
        hint = " (image.float() / 255 for 8-bit values)" if image.dtype == torch.uint8 else ""
        raise ValueError(f"image: expected a float tensor with values in [0, 1], got {image.dtype}{hint}")
    if len(shape) != 4 or shape[1] != 3:
        hint = ""
        if len(shape) == 3 and shape[0] == 3:
            hint = " (image[None] adds the batch dimension)"
        elif len(shape) == 4 and shape[3] == 3:
            hint = " (image.permute(0, 3, 1, 2) for channels last)"
        raise ValueError(f"image: expected shape (B, 3, H, W), got {shape}{hint}")
    if not image.numel():
        raise ValueError(f"image: expected a batch of at least one image of at least 1 x 1 pixels, got shape {shape}")
    if weights is not None and image.dtype != weights.dtype:
        raise ValueError(f"image: expected {weights.dtype} like the model's weights, got {image.dtype} "
                         f"(image.to({weights.dtype}))")
    if weights is not None and image.device != weights.device:
        raise ValueError(f"image: expected a tensor on {weights.device} like the model's weights, got one on "
                         f"{image.device} (image.to({str(weights.device)!r}))")
    bad = int((~torch.isfinite(image)).sum())
    if bad:
        raise ValueError(f"image: values must be finite, got {bad} NaN or infinite value(s)")
    low, high = float(image.min()), float(image.max())
    if high > 1:
        raise ValueError(f"image: values must lie in [0, 1], got max {high:g} (divide 8-bit images by 255)")
    if low < 0:
        raise ValueError(f"image: values must lie in [0, 1], got min {low:g} (map [-1, 1] images with (x + 1) / 2)")


class HubModel(Deployed):
    """Deployed with the checks of a model handed to users: its input (check_image) and its output
    (finite). `source` names the weights in messages. Deployed itself, which hdm-export traces, has none."""

    def __init__(self, model, source):
        super().__init__(model)
        self.source = source

    def forward(self, image):
        weights = next((p for p in self.parameters() if p.is_floating_point()), None)
        check_image(image, weights)
        try:
            return clamp_finite(self.model(image))
        except NonFiniteOutput as err:
            hint = "; the weights may be broken" if weights is not None else ""
            raise ValueError(f"{self.source}: the output is not finite for a valid image ({err}){hint}") from err


def hub_model(entry, weights=None, **kwargs):
    kind = ENTRIES[entry]
    cfg = {"type": kind}
    if weights is not None:
        stored = (stored_run_config(load_checkpoint(weights)) or {}).get("model")
        if stored is not None and stored["type"] != kind:
            entries = {v: k for k, v in ENTRIES.items()}
            use = f"use the entry {entries[stored['type']]!r}" if stored["type"] in entries else "it has no hub entry"
            raise ValueError(f"{weights}: holds a {stored['type']} model, not {kind}; {use}")
        cfg = copy.deepcopy(stored or cfg)
    cfg.update(kwargs)
    trained = weights is not None or kind in PARAMETER_FREE
    if trained:
        model = load_model(cfg, weights, torch.device("cpu"), fmt="contiguous")
    else:
        warnings.warn(f"{kind} without weights is UNTRAINED (random initialisation): its outputs mean nothing; "
                      f"pass weights=PATH to a checkpoint", stacklevel=3)
        model = build_model(cfg).eval()
    if weights is not None:
        source = f"{kind} weights {shown(weights)}"
    else:
        source = f"{kind} (no weights)" if kind in PARAMETER_FREE else f"{kind} without weights (untrained)"
    deployed = HubModel(model, source)
    deployed.trained = trained
    deployed.config = cfg
    return deployed
