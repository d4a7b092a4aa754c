"""Where and how models run: the device, the memory format, autocast, the CPU allocator setting, and
timing. Nothing here changes process-wide state on import or when a device is resolved;
keep_freed_memory() is called explicitly by the tools that run models on the CPU (training, test,
predict, the benchmark)."""
import contextlib
import ctypes
import functools
import os
import statistics
import sys
import time

import torch


def resolve_device(name):
    """torch.device for a config's `device` ('auto': CUDA when available, else CPU). No side effects:
    the tools that run models on the CPU call keep_freed_memory() themselves."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


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


AMP_MODES = ("off", "bf16", "fp16", "auto")


def autocast(device, mode):
    """Autocast context: 'bf16', 'fp16', 'auto' (fp16 on CUDA, bf16 elsewhere) or 'off' (a no-op)."""
    if mode not in AMP_MODES:
        raise ValueError(f"amp mode {mode!r} is not one of {', '.join(AMP_MODES)}")
    if mode == "off":
        return contextlib.nullcontext()
    if mode == "auto":
        mode = "fp16" if device.type == "cuda" else "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.float16 if mode == "fp16" else torch.bfloat16)
