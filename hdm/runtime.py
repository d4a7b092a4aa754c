"""Run-time plumbing of training: devices, seeds and RNG state, optimizers and schedules, the
resumable sampler, logging, and stop requests from signals. The training loop is hdm/engine.py."""
import logging
import os
import random
import signal
import sys
import threading

import numpy as np
import torch
from torch.utils.data import Sampler

logger = logging.getLogger("hdm")


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(cfg, params):
    cfg = dict(cfg)
    kind = cfg.pop("type")
    if kind != "Adam":
        raise ValueError(f"optim.type {kind!r} is not supported; valid: Adam")
    return torch.optim.Adam(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), weight_decay=cfg["weight_decay"])


def build_scheduler(cfg, optimizer, iterations):
    """Per-iteration schedules: 'cosine' (to eta_min over the run) or 'step' (x gamma every step_size)."""
    if cfg["type"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iterations, eta_min=cfg["eta_min"])
    if cfg["type"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"])
    raise ValueError(f"schedule.type {cfg['type']!r} is not supported; valid: cosine, step")


class EpochSampler(Sampler):
    """A fresh permutation per epoch from (seed, epoch), starting at `offset`: the data position is
    two integers, saved in checkpoints."""

    def __init__(self, size, seed):
        self.size, self.seed, self.epoch, self.offset = size, seed, 0, 0

    def __iter__(self):
        perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        return iter(perm[self.offset:].tolist())

    def __len__(self):
        return self.size - self.offset


def setup_logging(run_dir):
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(os.path.join(run_dir, "train.log"))):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.propagate = False


def run_dir_of(cfg):
    return os.path.join(cfg["work_dir"], cfg["name"])


class StopRequest:
    """Catches SIGINT and SIGTERM (in the main thread) so the loop can finish its step, save, and exit."""

    def __init__(self):
        self.signal, self._previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
