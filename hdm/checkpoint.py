"""Checkpoints: atomic writes, loading with clear errors, the newest readable one of a run, pruning."""
import logging
import os
import re
import tempfile

import torch

logger = logging.getLogger("hdm")

CKPT_PATTERN = re.compile(r"^iter_(\d+)\.pth$")


def atomic_save(obj, path):
    """torch.save to a temp file in the target folder, fsync, then rename over `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".pth", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(folder, os.O_RDONLY)  # make the rename itself durable
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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


def prune_checkpoints(folder, keep):
    """Delete all but the newest `keep` `iter_<n>.pth` files (best.pth is not touched)."""
    for _, path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        os.remove(path)
