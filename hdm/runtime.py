"""Run-time plumbing of training: devices, seeds and RNG state, the resumable sampler, logging, and
stop requests from signals. The training loop is hdm/engine.py."""
import ctypes
import functools
import logging
import os
import random
import signal
import statistics
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger("hdm")


def resolve_device(name):
    """torch.device for a config's `device` ('auto': CUDA when available, else CPU). On CPU it also
    calls keep_freed_memory()."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cpu":
        keep_freed_memory()
    return device


@functools.lru_cache(maxsize=None)
def keep_freed_memory():
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the system.

    By default every tensor above 32 MB is a fresh mmap, and each of its pages is faulted in and
    zeroed on first touch: at SOTS size a full-resolution 64-channel feature map (73 MB) costs about
    20 ms before any arithmetic, and HDM's CPU inference spends about a quarter of its time there.
    With mmap off and trimming off, freed blocks are reused; peak memory is unchanged. A no-op where
    glibc is absent or HDM_KEEP_FREED_MEMORY=0 is set. Returns whether the setting was applied."""
    if os.environ.get("HDM_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's mallopt parameter numbers
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2 ** 31 - 1))


def median_time(fn, repeats, device, warmup=1):
    """Median wall-clock seconds of fn() over `repeats` calls after `warmup` calls; CUDA work is
    synchronised before and after each timed call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def memory_format(name, device):
    """The torch memory format for models and images: 'channels_last', 'contiguous', or 'auto' =
    channels_last on CPU (oneDNN's convolutions run faster in NHWC: HDM's inference at SOTS size
    1.2x, a training step 1.1x on the benchmark CPU) and contiguous on other devices (not measured
    there yet)."""
    if name not in MEMORY_FORMATS:
        raise ValueError(f"memory format {name!r} is not one of {', '.join(MEMORY_FORMATS)}")
    if name == "auto":
        name = "channels_last" if device.type == "cpu" else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


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


class EpochSampler(Sampler):
    """Yields (index, epoch) keys: a fresh permutation per epoch from (seed, epoch), starting at
    `offset` (samples already used this epoch, counted over all processes). With `world` processes,
    process `rank` takes every world-th sample of each global batch of batch * world samples, and an
    epoch keeps only whole global batches, so every process runs the same number of steps. The data
    position is two integers, saved in checkpoints."""

    def __init__(self, size, seed, batch, rank=0, world=1):
        self.size, self.seed, self.batch, self.rank, self.world = size, seed, batch, rank, world
        self.epoch, self.offset = 0, 0

    def _usable(self):
        step = self.batch * self.world
        return (self.size - self.offset) // step * step

    def __iter__(self):
        perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        keys = perm[self.offset:self.offset + self._usable()][self.rank::self.world]
        return iter([(index, self.epoch) for index in keys.tolist()])

    def __len__(self):
        return self._usable() // self.world


class SeededSamples(Dataset):
    """dataset[(index, epoch)] with torch's RNG seeded by (seed, epoch, index) while the sample is made
    (and restored after): random crops and flips then depend on nothing else, not on the process,
    worker or history, so runs on any number of processes or workers, and resumed runs, see the same
    samples."""

    def __init__(self, dataset, seed):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, epoch = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + index)
            return self.dataset[index]


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


def distributed_setup():
    """(rank, world size, local rank) from torchrun's environment; joins the process group when there
    are several processes (NCCL on GPUs, gloo on CPUs). A plain `python train.py` is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank, world, local


def all_ranks_agree(flag):
    """True only if `flag` holds on every process (so every rank takes the same branch)."""
    if not (dist.is_available() and dist.is_initialized()):
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())
