"""The models behind hubconf.py (torch.hub.load(..., "hdm" | "aecrnet" | "hybrid" | "dcp" | "pfdcp")).

Each returns hdm.export.Deployed: forward(image) takes RGB float32 (B, 3, H, W) in [0, 1] of any size
and returns RGB in [0, 1], in eval mode on the CPU (move it with .to(device)). With weights, the
model's config is the one stored in the checkpoint (keyword arguments override it); without weights a
model with parameters is untrained: it says so in a warning and in `trained` (False).
"""
import copy
import warnings

import torch

from hdm.checkpoint import load_checkpoint
from hdm.export import Deployed
from hdm.inference import load_model

ENTRIES = {"hdm": "HDM", "aecrnet": "AECRNet", "hybrid": "HybridNet", "dcp": "DCP", "pfdcp": "PFDCP"}


def stored_model_config(ckpt):
    return (ckpt.get("config") or {}).get("model") or ckpt.get("model_config")


def hub_model(entry, weights=None, **kwargs):
    kind = ENTRIES[entry]
    cfg = {"type": kind}
    if weights is not None:
        stored = stored_model_config(load_checkpoint(weights))
        if stored is not None:
            if stored["type"] != kind:
                raise ValueError(f"{weights}: holds a {stored['type']} model, not {kind}; use the entry "
                                 f"{next(k for k, v in ENTRIES.items() if v == stored['type'])!r}")
            cfg = copy.deepcopy(stored)
    cfg.update(kwargs)
    model = load_model(cfg, weights, torch.device("cpu"), fmt="contiguous") if weights is not None or kind in ("DCP", "PFDCP") \
        else _untrained(cfg)
    deployed = Deployed(model)
    deployed.trained = weights is not None or kind in ("DCP", "PFDCP")
    deployed.config = cfg
    return deployed


def _untrained(cfg):
    from hdm.models import build_model

    warnings.warn(f"{cfg['type']} without weights is UNTRAINED (random initialisation): its outputs mean nothing; "
                  f"pass weights=PATH to a checkpoint", stacklevel=3)
    return build_model(cfg).eval()
