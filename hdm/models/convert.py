"""Conversion of the HDM authors' released checkpoint into this project's format.

The released file is `{'model': state_dict}` saved from `nn.DataParallel` (every key starts with
`module.`). Our HDM uses the release's module names, so the mapping is the identity after the prefix,
except for three entries the released network holds but never uses, which are dropped knowingly:
`drconv.*` (the HDM-F layer), `mix3.w` and `mix4.w`. Anything else that does not map is an error.
"""
import torch

from hdm.checkpoint import atomic_save

from .hdm import HDM

RELEASE_MODEL_CONFIG = {"type": "HDM", "dim": 64, "groups": 3, "blocks_per_group": 9, "stages": "PSRSR",
                        "region": "dcp", "num_regions": 5}
UNUSED_RELEASE_KEYS = ("drconv.", "mix3.w", "mix4.w")


def convert_hdm_state_dict(released):
    """Map a released HDM state dict onto ours. Returns (state_dict, dropped_keys); raises on mismatch."""
    reference = HDM(**{k: v for k, v in RELEASE_MODEL_CONFIG.items() if k != "type"}).state_dict()
    converted, dropped = {}, []
    for key, value in released.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name.startswith(UNUSED_RELEASE_KEYS):
            dropped.append(key)
            continue
        converted[name] = value
    unexpected = sorted(set(converted) - set(reference))
    missing = sorted(set(reference) - set(converted))
    wrong = sorted(f"{k}: {tuple(converted[k].shape)} != {tuple(reference[k].shape)}"
                   for k in set(converted) & set(reference) if converted[k].shape != reference[k].shape)
    if unexpected or missing or wrong:
        raise ValueError("released HDM checkpoint does not map onto HDM: "
                         f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
                         f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, wrong shapes {wrong[:5]}")
    return {k: converted[k].detach().clone().float() for k in reference}, dropped


def convert_official_checkpoint(src, dst):
    """Read the authors' file, convert it, and atomically write a checkpoint test.py loads.

    Returns the list of dropped keys. Legacy pickles need `weights_only=False`, which executes pickled
    code: only convert files from a source you trust.
    """
    obj = torch.load(src, map_location="cpu", weights_only=False)
    released = obj["model"] if isinstance(obj, dict) and "model" in obj else obj
    if not isinstance(released, dict) or not all(torch.is_tensor(v) for v in released.values()):
        raise ValueError(f"{src}: expected {{'model': state_dict}} or a state dict of tensors")
    state, dropped = convert_hdm_state_dict(released)
    atomic_save({"model": state, "model_config": dict(RELEASE_MODEL_CONFIG), "source": str(src)}, dst)
    return dropped
