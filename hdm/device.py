"""Where and how models run: the device, the memory format, autocast, the CPU allocator setting, and
timing. Nothing here changes process-wide state on import or when a device is resolved;
keep_freed_memory() is called explicitly by the tools that run models on the CPU (training, test,
predict, the benchmark)."""
import contextlib
import ctypes
import functools
import logging
import statistics
import sys
import time

import torch

from hdm import environment


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
    if not environment.value("HDM_KEEP_FREED_MEMORY") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's mallopt parameter numbers
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2 ** 31 - 1))


def call_times(fn, repeats, device, warmup=1):
    """Wall-clock seconds of each of `repeats` calls of fn() (at least one) after `warmup` calls; CUDA
    work is synchronised before and after each timed call."""
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
    return times


def median_time(fn, repeats, device, warmup=1):
    """Median wall-clock seconds of fn() over `repeats` calls after `warmup` calls (call_times)."""
    return statistics.median(call_times(fn, repeats, device, warmup))


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
AMP_RUNS = {"off": "fp32 (no autocast)", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}  # what a mode computes in
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively


@functools.lru_cache(maxsize=None)
def cpu_features():
    """The instruction-set flags of this CPU that matter for its speed here (from /proc/cpuinfo on Linux;
    empty elsewhere): avx2, avx512f, avx512_bf16, amx_bf16, amx_tile."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return ()
    return tuple(sorted({"avx2", "avx512f", "amx_tile", *NATIVE_BF16_FLAGS} & set(flags)))


def cpu_bf16_native():
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX). Without it oneDNN emulates bf16,
    and HDM's inference was measured 14x slower than fp32 on an AVX2 host. HDM_CPU_BF16=1 or 0 overrides
    the detection."""
    forced = environment.value("HDM_CPU_BF16")
    if forced is not None:
        return forced
    return any(flag in cpu_features() for flag in NATIVE_BF16_FLAGS)


def amp_mode(requested, device):
    """The autocast mode to run for a requested one: 'auto' = fp16 on CUDA, bf16 on a CPU that computes
    it natively, else off; 'bf16' on a CPU without native bf16 = off (fp32 is faster there). Logs one
    line when it turns mixed precision off."""
    if device.type != "cpu" or requested in ("off", "fp16") or cpu_bf16_native():
        return "fp16" if requested == "auto" and device.type == "cuda" else "bf16" if requested == "auto" else requested
    _say_fp32(requested, environment.value("HDM_CPU_BF16") is not None)
    return "off"


@functools.lru_cache(maxsize=None)
def _say_fp32(requested, forced):
    if forced:
        logging.getLogger("hdm").warning("amp %s: HDM_CPU_BF16=0 turns bf16 off; running in fp32", requested)
        return
    logging.getLogger("hdm").warning(
        "amp %s: this CPU has no native bf16 (flags %s lack %s), where bf16 is emulated and many times slower "
        "than fp32; running in fp32 (HDM_CPU_BF16=1 forces bf16)", requested, ", ".join(cpu_features()) or "unknown",
        " / ".join(NATIVE_BF16_FLAGS))


def autocast(device, mode):
    """Autocast context: 'bf16', 'fp16', 'auto' (fp16 on CUDA, bf16 elsewhere) or 'off' (a no-op), as
    asked (the tools choose the mode with amp_mode first)."""
    if mode not in AMP_MODES:
        raise ValueError(f"amp mode {mode!r} is not one of {', '.join(AMP_MODES)}")
    if mode == "off":
        return contextlib.nullcontext()
    if mode == "auto":
        mode = "fp16" if device.type == "cuda" else "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.float16 if mode == "fp16" else torch.bfloat16)
