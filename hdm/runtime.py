"""Run-time plumbing of training: seeds and RNG state, logging, run folders' names, stop requests from
signals, and the distributed process group. Devices are hdm/device.py; the loop is hdm/engine.py."""
import logging
import os
import random
import signal
import sys
import threading

import numpy as np
import torch
import torch.distributed as dist

from hdm import environment
from hdm.errors import shown

logger = logging.getLogger("hdm")


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


class OneLineFormatter(logging.Formatter):
    """A log record as one line of printable text: the formatted message passed through hdm.errors.shown, so
    a file name in it (bytes that are not UTF-8, a newline) is escaped wherever the message came from."""

    def format(self, record):
        return shown(super().format(record))


def setup_logging(run_dir):
    """The "hdm" logger to stdout and `<run_dir>/train.log` (UTF-8), one line a record (OneLineFormatter)."""
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    fmt = OneLineFormatter("%(asctime)s %(message)s", "%H:%M:%S")
    log_file = logging.FileHandler(os.path.join(run_dir, "train.log"), encoding="utf-8", errors="backslashreplace")
    for handler in (logging.StreamHandler(sys.stdout), log_file):
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


def distributed_setup(join=True):
    """(rank, world size, local rank) from torchrun's environment (checked: hdm.environment.distributed);
    joins the process group when there are several processes and `join` (NCCL on GPUs, gloo on CPUs).
    A plain `python train.py` is rank 0 of 1."""
    rank, world, local = environment.distributed()
    if world == 1 or not join:
        return rank, world, local
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank, world, local


def peer_lost(err):
    """Whether an error raised by a collective says another process of the group is gone (gloo: its connection
    reset or closed; NCCL: a backend error)."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    return isinstance(err, dist.DistError) or any(text in str(err) for text in LOST_PEER)


LOST_PEER = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Socket closed")


def all_ranks_agree(flag):
    """True only if `flag` holds on every process (so every rank takes the same branch)."""
    if not (dist.is_available() and dist.is_initialized()):
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())
