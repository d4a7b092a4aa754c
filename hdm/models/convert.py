"""Conversion of the authors' released checkpoints into this project's format.

- HDM (`hdm_haze_sots.pk`): `{'model': state_dict}` saved from `nn.DataParallel` (keys start with
  `module.`). Three entries the released network holds but never uses are dropped knowingly:
  `drconv.*` (the HDM-F layer), `mix3.w` and `mix4.w`.
- AECR-Net: the release's training script saves `{'model': ..., 'optimizer': ..., 'step': ...}`
  (from `nn.DataParallel` on GPU); every key maps.
Our models use the releases' module names, so the mapping is the identity after the prefix; anything
that does not map (unexpected, missing, or of another shape) is an error.
"""
import torch

from hdm.checkpoint import atomic_save
from hdm.files import open_input

from . import build_model

RELEASES = {
    "hdm": {"model": {"type": "HDM", "dim": 64, "groups": 3, "blocks_per_group": 9, "stages": "PSRSR",
                      "region": "dcp", "num_regions": 5},
            "unused": ("drconv.", "mix3.w", "mix4.w")},
    "aecrnet": {"model": {"type": "AECRNet", "ngf": 64, "block_repeats": 6, "dfe": True, "skip": "mix"},
                "unused": ()},
}


def convert_state_dict(released, kind):
    """Map a released state dict onto our model. Returns (state_dict, dropped_keys); raises on mismatch."""
    if kind not in RELEASES:
        raise ValueError(f"unknown release {kind!r}; valid: {', '.join(RELEASES)}")
    reference = build_model(RELEASES[kind]["model"]).state_dict()
    converted, dropped = {}, []
    for key, value in released.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if RELEASES[kind]["unused"] and name.startswith(RELEASES[kind]["unused"]):
            dropped.append(key)
            continue
        converted[name] = value
    unexpected = sorted(set(converted) - set(reference))
    missing = sorted(set(reference) - set(converted))
    wrong = sorted(f"{k}: {tuple(converted[k].shape)} != {tuple(reference[k].shape)}"
                   for k in set(converted) & set(reference) if converted[k].shape != reference[k].shape)
    if unexpected or missing or wrong:
        raise ValueError(f"released {kind} checkpoint does not map onto {RELEASES[kind]['model']['type']}: "
                         f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
                         f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, wrong shapes {wrong[:5]}")
    return {k: converted[k].detach().clone().to(reference[k].dtype) for k in reference}, dropped


def convert_official_checkpoint(src, dst, kind="hdm"):
    """Read the authors' file, convert it, and atomically write a checkpoint test.py loads.

    Returns the list of dropped keys. Legacy pickles need `weights_only=False`, which executes pickled
    code: only convert files from a source you trust.
    """
    with open_input(src, "release file") as f:
        obj = torch.load(f, map_location="cpu", weights_only=False)
    released = obj["model"] if isinstance(obj, dict) and "model" in obj else obj
    if not isinstance(released, dict) or not all(torch.is_tensor(v) for v in released.values()):
        raise ValueError(f"{src}: expected {{'model': state_dict}} or a state dict of tensors")
    state, dropped = convert_state_dict(released, kind)
    save_converted(state, RELEASES[kind]["model"], src, dst)
    return dropped


def save_converted(state, model_cfg, source, dst):
    """The converted checkpoint format: the weights, the model's config, and the file they came from (how
    they were chosen is not recorded in a release)."""
    atomic_save({"model": state, "model_config": dict(model_cfg), "source": str(source)}, dst)
