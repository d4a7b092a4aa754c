"""Checkpoints: atomic writes, loading with clear errors, the newest readable one of a run, pruning."""
import logging
import math
import os
import re

import torch

from hdm.errors import shown
from hdm.files import atomic_write, open_input
from hdm.identity import same_path

logger = logging.getLogger("hdm")

CKPT_PATTERN = re.compile(r"^iter_(\d+)\.pth$")  # the one naming rule of periodic checkpoints


def checkpoint_path(folder, iteration):
    """<folder>/iter_<iteration>.pth (parsed back by list_checkpoints)."""
    return os.path.join(folder, f"iter_{iteration}.pth")


def atomic_save(obj, path):
    """torch.save through hdm.files.atomic_write, with the rename made durable."""
    with atomic_write(path, durable=True) as f:
        torch.save(obj, f)


def load_checkpoint(path):
    """Load a checkpoint written by this project (tensors and plain containers only)."""
    with open_input(path, "checkpoint file") as f:
        try:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as err:
            raise RuntimeError(f"{shown(path)}: not a readable hdm checkpoint ({type(err).__name__}: {err}); "
                               f"released checkpoints must be converted first with scripts/convert_official.py") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RuntimeError(f"{shown(path)}: expected a dict with a 'model' state dict, got {type(ckpt).__name__}")
    check_entries(ckpt, path, ENTRIES)
    return ckpt


def _state_dict(value):
    return isinstance(value, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in value.items())


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# what each entry of a checkpoint may hold (a missing entry is allowed here; the tool that needs it says so):
def _set_description(v):
    """A dataset description as selection_record and same_set read it."""
    if not isinstance(v, dict):
        return False
    root, fingerprint = v.get("root"), v.get("fingerprint")
    return isinstance(v.get("type"), str) and (
        isinstance(root, str) or (isinstance(root, (list, tuple)) and all(isinstance(r, str) for r in root))) and \
        (fingerprint is None or isinstance(fingerprint, str)) and _count(v.get("samples", 0))


def _selection(v):
    """A selection entry holding every field selection_record reads, of the kind it reads."""
    if not isinstance(v, dict) or not _count(v.get("iteration")):
        return False
    if v.get("by") == "iteration":
        return isinstance(v.get("final"), bool)
    digests = v.get("target_digests")
    return v.get("by") == "best validation psnr" and _number(v.get("psnr")) and isinstance(v.get("on_test_set"), bool) \
        and _set_description(v.get("val_set")) and (digests is None or (isinstance(digests, list)
                                                                       and all(isinstance(d, str) for d in digests)))


# iter_<n>.pth is a TrainState plus config, selection and data; best.pth holds model, iteration, val,
# config, selection, ema_weights; converted release weights hold model, model_config and source
ENTRIES = {
    "model": ("a state dict of tensors", _state_dict),
    "ema": ("a state dict of tensors", lambda v: _state_dict(v) or isinstance(v, bool)),  # bool: best.pth before 0.1
    "ema_weights": ("true or false", lambda v: isinstance(v, bool)),
    "discriminator": ("a state dict of tensors", _state_dict),
    "config": ("a mapping (the run's config)", lambda v: isinstance(v, dict)),
    "model_config": ("a mapping with a 'type'", lambda v: isinstance(v, dict) and isinstance(v.get("type"), str)),
    "source": ("a file name", lambda v: isinstance(v, str)),
    "iteration": ("a whole number >= 0", _count),
    "val": ("a mapping of scores", lambda v: isinstance(v, dict) and all(_number(x) for x in v.values())),
    "data": ("a mapping of dataset descriptions {split: null or {type, root, ...}}", lambda v: isinstance(v, dict)
             and all(d is None or _set_description(d) for d in v.values())),
    "selection": ("a mapping saying how the checkpoint was chosen (by, iteration, and final, or psnr, on_test_set, "
                  "val_set {type, root, ...} and target_digests)", lambda v: _selection(v)),
}
# what a TrainState adds, checked before a resume (hdm.run_folder.find_resume)
TRAINING_ENTRIES = {
    "optimizer": ("an optimizer state", lambda v: isinstance(v, dict) and "state" in v and "param_groups" in v),
    "scheduler": ("a scheduler state", lambda v: isinstance(v, dict)),
    "iteration": ("a whole number >= 0", _count),
    "data_position": ("[epoch, offset], whole numbers >= 0", lambda v: isinstance(v, (list, tuple)) and len(v) == 2
                      and all(_count(x) for x in v)),
    "rng": ("the random states of python, numpy and torch", lambda v: isinstance(v, dict) and
            {"python", "numpy", "torch"} <= set(v)),
    "best": ("null or {psnr, iteration}", lambda v: v is None or (isinstance(v, dict) and _number(v.get("psnr"))
                                                                 and _count(v.get("iteration")))),
    "last_good": ("null or a whole number >= 0", lambda v: v is None or _count(v)),
}


def check_entries(ckpt, path, entries, required=()):
    """RuntimeError naming the file and the entry for a checkpoint entry that is not what `entries`
    ({key: (what, test)}) says, or a `required` one that is missing."""
    missing = [key for key in required if key not in ckpt]
    if missing:
        raise RuntimeError(f"{shown(path)}: holds no {', '.join(missing)}")
    for key, (what, test) in entries.items():
        if key in ckpt and not test(ckpt[key]):
            raise RuntimeError(f"{shown(path)}: its {key!r} entry is not {what}")


def model_weights(ckpt, path="checkpoint"):
    """The one rule for which weights a checkpoint gives to every tool that restores images: the EMA
    weights when a run kept them (an iteration checkpoint's 'ema' state dict, as validation used them;
    best.pth stores the weights it validated under 'model' and marks EMA ones with 'ema_weights'),
    else 'model'. Returns (state dict, 'ema' or 'model'); RuntimeError naming the file otherwise."""
    ema = ckpt.get("ema")
    state, kind = (ema, "ema") if isinstance(ema, dict) else \
        (ckpt.get("model"), "ema" if ckpt.get("ema_weights") or ema is True else "model")
    check_entries({kind: state}, path, {kind: ENTRIES["model"]})
    return state, kind


# model arguments that change how a model computes, not what it is: a config may set them for weights
# trained with other values (hdm-predict --weights W model.region_strategy=masked_sum)
COMPUTE_ONLY = ("dcn_backend", "region_strategy", "checkpoint_groups")


def model_differences(model_cfg, ckpt):
    """The model arguments in which `model_cfg` differs from the model the checkpoint was trained as (its
    stored config; defaults filled in from the constructor), but for COMPUTE_ONLY ones. [] when the
    checkpoint records no config."""
    import inspect

    from hdm.models import MODELS

    stored = (stored_run_config(ckpt) or {}).get("model")
    if not isinstance(stored, dict):
        return []
    if stored.get("type") != model_cfg.get("type"):
        return ["type"]

    def full(cfg):
        params = inspect.signature(MODELS[cfg["type"]].__init__).parameters
        args = {k: p.default for k, p in params.items() if k != "self" and p.default is not p.empty}
        args.update(cfg)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}

    a, b = full(stored), full(model_cfg)
    return sorted(k for k in set(a) | set(b) if k not in COMPUTE_ONLY and a.get(k) != b.get(k))


def stored_run_config(ckpt):
    """The config a checkpoint carries: train.py's whole run config, or {'model': ...} for converted
    release weights; None when it has neither."""
    return ckpt.get("config") or ({"model": ckpt["model_config"]} if "model_config" in ckpt else None)


def list_checkpoints(folder):
    """(iteration, path) of the `iter_<n>.pth` files in a folder, oldest first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name))
             for name in os.listdir(folder) if (m := CKPT_PATTERN.match(name))]
    return sorted(found)


def latest_readable_checkpoint(folder):
    """(path, checkpoint) of the newest `iter_<n>.pth` that loads, or (None, None). A newest file that is
    truncated or unreadable is skipped with a warning naming it and the one used instead."""
    skipped = []
    for _, path in reversed(list_checkpoints(folder)):
        try:
            ckpt = load_checkpoint(path)
        except (RuntimeError, OSError):
            skipped.append(path)
            logger.warning("checkpoint %s is unreadable; trying an older one", path)
            continue
        if skipped:
            logger.warning("resuming from %s instead of the unreadable %s", path, ", ".join(skipped))
        return path, ckpt
    return None, None


def prune_checkpoints(folder, keep, protect=()):
    """Delete all but the newest `keep` `iter_<n>.pth` files and those of the iterations in `protect`
    (best.pth is not touched)."""
    for iteration, path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        if iteration not in protect:
            os.remove(path)


def same_set(a, b):
    """Whether two dataset descriptions (PairedDataset.describe()) name the same samples: by their content
    fingerprints (hdm.identity.set_fingerprint), or, for descriptions written before fingerprints were
    recorded, by the same folders (hdm.identity.same_path) read the same way."""
    if not a or not b:
        return False
    if a.get("fingerprint") and b.get("fingerprint"):
        return a["fingerprint"] == b["fingerprint"]
    roots = lambda d: [d["root"]] if isinstance(d["root"], str) else d["root"]  # noqa: E731
    keys = ("type", "split", "holdout", "take")
    return len(roots(a)) == len(roots(b)) and all(same_path(x, y) for x, y in zip(roots(a), roots(b))) and \
        all(a.get(k) == b.get(k) for k in keys)


def selection_record(path, ckpt, tested, tested_digests=None):
    """What test.py records of the weights it scores: the file, the iteration, how the checkpoint was
    chosen (one sentence), and whether it was selected on images of the tested set: by content, the
    selection's target digests against `tested_digests` (hdm.data.prepare.target_digests of the tested
    set; `shared_images` counts them), or for checkpoints without digests by same_set with `tested`
    (the tested set's description)."""
    sel = ckpt.get("selection")
    if sel is None:
        how = (f"converted release weights ({ckpt['source']}); how they were chosen is not recorded"
               if "source" in ckpt else "not recorded (a checkpoint written before selections were recorded)")
        return {"weights": path, "iteration": ckpt.get("iteration"), "chosen": how, "selected_on_tested_set": False}
    val = sel.get("val_set")
    if sel["by"] == "iteration":
        how = f"iteration {sel['iteration']}{' (the final one)' if sel['final'] else ''}, not selected on any score"
        on_tested = False
    else:
        holdout = val.get("holdout")
        where = f"{val['type']} {val['root']}" + (f" (take {val.get('take')} of holdout {holdout})" if holdout else "")
        how = (f"best validation PSNR ({sel['psnr']:.2f} dB) at iteration {sel['iteration']} on {where}"
               f"{', a test set' if sel['on_test_set'] else ''}")
        if sel.get("target_digests") is not None and tested_digests is not None:
            shared = len(set(sel["target_digests"]) & set(tested_digests))
            return {"weights": path, "iteration": sel["iteration"], "chosen": how, "selection": sel,
                    "selected_on_tested_set": shared > 0, "shared_images": shared}
        on_tested = same_set(val, tested)
    return {"weights": path, "iteration": sel["iteration"], "chosen": how, "selection": sel,
            "selected_on_tested_set": on_tested}
