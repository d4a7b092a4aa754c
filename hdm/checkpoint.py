"""Checkpoints: atomic writes, loading with clear errors, the newest readable one of a run, pruning."""
import logging
import os
import re

import torch

from hdm.files import atomic_write
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
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"{path}: not a readable hdm checkpoint ({type(err).__name__}: {err}); "
                           f"released checkpoints must be converted first with scripts/convert_official.py") from err
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RuntimeError(f"{path}: expected a dict with a 'model' state dict, got {type(ckpt).__name__}")
    return ckpt


def model_weights(ckpt, path="checkpoint"):
    """The one rule for which weights a checkpoint gives to every tool that restores images: the EMA
    weights when a run kept them (an iteration checkpoint's 'ema' state dict, as validation used them;
    best.pth stores the weights it validated under 'model' and marks EMA ones with 'ema_weights'),
    else 'model'. Returns (state dict, 'ema' or 'model'); RuntimeError naming the file otherwise."""
    ema = ckpt.get("ema")
    state, kind = (ema, "ema") if isinstance(ema, dict) else \
        (ckpt.get("model"), "ema" if ckpt.get("ema_weights") or ema is True else "model")
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise RuntimeError(f"{path}: its {kind!r} entry is not a state dict of tensors")
    return state, kind


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


def selection_record(path, ckpt, tested):
    """What test.py records of the weights it scores: the file, the iteration, how the checkpoint was
    chosen (one sentence), and whether it was selected on `tested` (the description of the test set)."""
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
        where = f"{val['type']} {val['root']}" + (f" (take {val['take']} of holdout {val['holdout']})" if val["holdout"] else "")
        how = (f"best validation PSNR ({sel['psnr']:.2f} dB) at iteration {sel['iteration']} on {where}"
               f"{', a test set' if sel['on_test_set'] else ''}")
        on_tested = same_set(val, tested)
    return {"weights": path, "iteration": sel["iteration"], "chosen": how, "selection": sel,
            "selected_on_tested_set": on_tested}
