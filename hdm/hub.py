"""The models behind hubconf.py (torch.hub.load(..., "hdm" | "aecrnet" | "hybrid" | "dcp" | "pfdcp")).

Each returns hdm.export.Deployed: forward(image) takes RGB float32 (B, 3, H, W) in [0, 1] of any size
and returns RGB in [0, 1], in eval mode on the CPU (move it with .to(device)). With weights, the
model's config is the one stored in the checkpoint (keyword arguments override it); without weights a
model with parameters is untrained: it says so in a warning and in `trained` (False).
"""
import copy
import warnings

import torch

from hdm.checkpoint import load_checkpoint, stored_run_config
from hdm.export import Deployed
from hdm.inference import load_model
from hdm.models import build_model

ENTRIES = {"hdm": "HDM", "aecrnet": "AECRNet", "hybrid": "HybridNet", "dcp": "DCP", "pfdcp": "PFDCP"}


PARAMETER_FREE = ("DCP", "PFDCP")


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
    deployed = Deployed(model)
    deployed.trained = trained
    deployed.config = cfg
    return deployed
