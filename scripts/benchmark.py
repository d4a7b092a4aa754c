"""Performance benchmark: operators, whole HDM, tiled inference; one side-by-side table.

    # doc-test: skip (minutes; tests/test_benchmark.py runs it with --tiny)
    python scripts/benchmark.py [--quick] [--device cpu|cuda] [--out benchmarks/NAME] [--sections ...]

Every time is the median of the repeats after one warm-up (CUDA synchronised). Writes NAME.json
(all rows and the run's settings) and NAME.md (the table) and prints the table. Sections:
- conv: dense-conv throughput (GFLOP/s) at HDM's two dominant shapes, NCHW and channels_last; the
  best of them is the "conv peak" the HDM rows are measured against (floor = FLOPs / peak).
- dcn: deformable-conv backends, forward and forward + backward, at HDM's feature size for a batch
  of 240 crops and for one SOTS image.
- masks: HDM's DCP masks, batched torch against the per-image NumPy/OpenCV/PIL version of the
  release's procedure (hdm/ops/dcp_reference.py, the parity reference of the tests).
- region_conv: the release's strategy (all N filters everywhere, masked sum) against per-region.
- hdm_infer / hdm_train: the released HDM, inference of one SOTS-size image and one training step
  (batch 16 x 240 on CUDA, 4 x 240 on CPU), in the modes `release` (NCHW, masked-sum region conv,
  default glibc malloc: the straightforward computation), `eager` (NCHW with the fast paths),
  `channels_last` (the CPU default), `compile` (torch.compile of channels_last) and `bf16`
  (channels_last under bf16 autocast); each in its own process, so peak memory (CPU: peak resident
  set of the process; CUDA: peak allocated) is the mode's own; inference rows give the largest
  difference from the release output.
- svrnn: the low-light network's spatial RNN scan against its Python loop reference.
- tiled: a 3840x2160 image whole and in 512-pixel tiles (overlap 48): time, peak memory, PSNR
  between the two outputs (the released HDM with random weights, masks global).
- tiled_trained: trained models (--trained CHECKPOINT ..., e.g. the demo's; else a small HDM trained
  here for 300 iterations on the demo haze), a 1000x700 image (the first of each config's data.val,
  resized) whole and tiled: the largest difference from the whole-image output and the change of PSNR
  to the target, for the default tiling and for blended whole-model tiles (the earlier approach).
- onnx: every deployable model exported (hdm-export's code, random weights), one SOTS-size image and
  one 1920x1080 image restored by ONNX Runtime, PyTorch eager (NCHW) and PyTorch with the tools' CPU
  defaults (channels_last), each route in its own process, the routes in turn for two rounds (the
  median over both rounds' calls); export time, the largest difference from ONNX Runtime's output,
  ONNX Runtime's profile per operator type and its session options. The networks also run as INT8
  (hdm-export --quantize, calibrated on the export check's three photo crops; route `onnxruntime int8`):
  its speed-up over the CPU defaults and its PSNR against the float32 graph's output on the image.
--quick: 2 repeats, training batch 2 on CPU, no 512 RNN case, a 1920x1080 image for the tiled cases
(one run each), no compiled training step.
--tiny: every section once at toy sizes without compiling (the test suite checks the script this way).
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from hdm.cli import Parser, UsageError, console, device_name, existing_file, first_line
from hdm.device import autocast, call_times, cpu_features, keep_freed_memory, median_time, resolve_device
from hdm.errors import shown
from hdm.files import atomic_write
from hdm.inference import compile_model, restore
from hdm.models.blocks import region_conv_masked_sum, region_conv_per_region
from hdm.models.hdm import HDM
from hdm.ops import available_backends, modulated_deform_conv2d
from hdm.ops.dcp import dcp_region_masks
from hdm.ops.dcp_reference import release_masks
from hdm.ops.svrnn import spatial_rnn, spatial_rnn_loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECTIONS = ("conv", "dcn", "masks", "region_conv", "hdm_infer", "hdm_train", "svrnn", "tiled", "tiled_trained", "onnx")
TINY_HDM = dict(dim=8, groups=1, blocks_per_group=1)
DEPLOYED = [{"type": "HDM"}, {"type": "AECRNet"}, {"type": "HybridNet"}, {"type": "DCP"}, {"type": "PFDCP"}]
MODES = ("release", "eager", "channels_last", "compile", "bf16")

# sizes per level: full, quick, tiny
SIZES = {
    "full": dict(repeats=5, conv=[(1, 64, 115, 155, 3), (1, 64, 460, 620, 5)], dcn=[(16, 64, 60, 60), (1, 64, 115, 155)],
                 masks=[(16, 240, 240), (1, 460, 620)], region=[(16, 64, 60, 60), (1, 64, 115, 155)],
                 infer=(460, 620), train=(240, 16, 4), svrnn=[128, 512], tiled=((2160, 3840), 512, 48), tiled_repeats=2,
                 trained=dict(iterations=300, photo=(700, 1000), tiles=(512, 128)),
                 model={}, infer_modes=MODES, train_modes=MODES,
                 onnx=dict(photos=[(460, 620), (1080, 1920)], models=DEPLOYED, rounds=2, repeats=2)),
    "quick": dict(repeats=2, conv=[(1, 64, 115, 155, 3), (1, 64, 460, 620, 5)], dcn=[(16, 64, 60, 60), (1, 64, 115, 155)],
                  masks=[(16, 240, 240), (1, 460, 620)], region=[(16, 64, 60, 60), (1, 64, 115, 155)],
                  infer=(460, 620), train=(240, 16, 2), svrnn=[128], tiled=((1080, 1920), 512, 48), tiled_repeats=0,
                  trained=dict(iterations=150, photo=(700, 1000), tiles=(512, 128)),
                  model={}, infer_modes=MODES, train_modes=("release", "eager", "channels_last", "bf16"),
                  onnx=dict(photos=[(460, 620)], models=DEPLOYED[:4], rounds=1, repeats=2)),
    "tiny": dict(repeats=1, conv=[(1, 8, 12, 12, 3)], dcn=[(2, 8, 12, 12)], masks=[(2, 48, 64)], region=[(2, 8, 12, 12)],
                 infer=(32, 44), train=(32, 2, 2), svrnn=[16], tiled=((64, 96), 32, 8), tiled_repeats=0,
                 trained=dict(iterations=4, photo=(96, 128), tiles=(64,)),
                 model=TINY_HDM, infer_modes=("release", "eager", "channels_last", "bf16"),
                 train_modes=("release", "channels_last"),
                 onnx=dict(photos=[(48, 60)], models=[{"type": "HDM", **TINY_HDM}, {"type": "DCP"}], rounds=1, repeats=1)),
}


def forward_backward_ms(fn, tensors, repeats, device):
    """(forward ms, forward + backward ms) of fn(*tensors), the backward of its sum."""
    def fwd():
        with torch.no_grad():
            fn(*tensors)

    leaves = [t.clone().requires_grad_() for t in tensors]
    return (1e3 * median_time(fwd, repeats, device),
            1e3 * median_time(lambda: fn(*leaves).sum().backward(), repeats, device))


def first_and_median(fn, repeats, device):
    """(fn's first result, seconds of that first call, median seconds of `repeats` more calls; the
    first call's time when repeats is 0)."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    return result, first, (median_time(fn, repeats, device, warmup=0) if repeats else first)


def bench_conv(cases, repeats, device):
    rows = []
    for b, c, h, w, k in cases:
        x, weight = torch.randn(b, c, h, w, device=device), torch.randn(c, c, k, k, device=device)
        flops = 2 * b * c * c * k * k * h * w
        for fmt_name, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
            xf, wf = x.contiguous(memory_format=fmt), weight.contiguous(memory_format=fmt)
            with torch.no_grad():
                t = median_time(lambda: F.conv2d(xf, wf, padding=k // 2), repeats, device)
            rows.append({"section": "conv", "case": f"{b}x{c}x{h}x{w} {k}x{k}", "impl": fmt_name,
                         "ms": 1e3 * t, "GFLOP/s": flops / t / 1e9})
    return rows


def bench_dcn(shapes, repeats, device):
    rows = []
    for b, c, h, w in shapes:
        tensors = [torch.randn(b, c, h, w), torch.randn(b, 18, h, w) * 2, torch.rand(b, 9, h, w),
                   torch.randn(c, c, 3, 3) * 0.05, torch.zeros(c)]
        tensors = [t.to(device) for t in tensors]
        for backend in available_backends():
            fwd, fwd_bwd = forward_backward_ms(lambda *a: modulated_deform_conv2d(*a, 1, 1, 1, backend=backend), tensors,
                                      repeats, device)
            rows.append({"section": "dcn", "case": f"{b}x{c}x{h}x{w}", "impl": backend, "forward ms": fwd,
                         "fwd+bwd ms": fwd_bwd})
    return rows


def bench_masks(cases, repeats, device):
    rows = []
    for b, h, w in cases:
        imgs = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(0))
        imgs_u8 = [np.ascontiguousarray((imgs[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for i in range(b)]
        dev_imgs = imgs.to(device)
        t_torch = median_time(lambda: dcp_region_masks(dev_imgs), repeats, device)
        t_ref = median_time(lambda: [release_masks(im) for im in imgs_u8], repeats, torch.device("cpu"))
        case = f"batch {b} of {h}x{w}"
        rows.append({"section": "masks", "case": case, "impl": "numpy per image (release)", "ms/image": 1e3 * t_ref / b,
                     "speed-up": 1.0})
        rows.append({"section": "masks", "case": case, "impl": f"torch batched ({device.type})", "ms/image": 1e3 * t_torch / b,
                     "speed-up": t_ref / t_torch})
    return rows


def bench_region_conv(shapes, repeats, device, n=5, k=3):
    rows = []
    for b, c, h, w in shapes:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(b, c, h, w, generator=gen).to(device).contiguous(memory_format=torch.channels_last)
        filters = (0.05 * torch.randn(b, n, c, c, k, k, generator=gen)).to(device)
        region = torch.randint(0, n, (b, h, w), generator=gen).to(device)
        mask = F.one_hot(region, n).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            diff = (region_conv_per_region(x, filters, region) - region_conv_masked_sum(x, filters, mask)).abs().max().item()
            t_rel = median_time(lambda: region_conv_masked_sum(x, filters, mask), repeats, device)
            t_fast = median_time(lambda: region_conv_per_region(x, filters, region), repeats, device)
        case = f"{b}x{c}x{h}x{w}, N={n}"
        rows.append({"section": "region_conv", "case": case, "impl": "masked sum (release)", "forward ms": 1e3 * t_rel,
                     "max |diff|": 0.0})
        rows.append({"section": "region_conv", "case": case, "impl": "per region", "forward ms": 1e3 * t_fast,
                     "max |diff|": diff})
    return rows


def bench_svrnn(sizes, repeats, device, batch=4, channels=32):
    rows = []
    for size in sizes:
        shape = (batch, channels, size, size)
        x, g, p = torch.randn(shape, device=device), torch.randn(shape, device=device), torch.rand(shape, device=device)
        for impl, fn in (("python loop", spatial_rnn_loop), ("chunked scan", spatial_rnn)):
            fwd, fwd_bwd = forward_backward_ms(lambda *a: fn(*a, "left_right"), (x, g, p), repeats, device)
            rows.append({"section": "svrnn", "case": f"{batch}x{channels}x{size}x{size}", "impl": impl,
                         "forward ms": fwd, "fwd+bwd ms": fwd_bwd})
    return rows


# ---------------------------------------------------------------- whole-model cases, one process each

def hdm_flops(model_kwargs, shape, train):
    """FLOPs counted by torch.utils.flop_counter (convolutions and matrix products) of the default path."""
    model = HDM(**model_kwargs).train(train)
    x = torch.rand(*shape)
    with FlopCounterMode(display=False) as counter:
        if train:
            model(x).abs().mean().backward()
        else:
            with torch.no_grad():
                model(x)
    return counter.get_total_flops()


def image(shape, seed=0):
    """A smooth synthetic hazy-looking RGB batch in [0, 1] (random low-frequency field plus haze)."""
    b, _, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    low = F.interpolate(torch.rand(b, 3, max(h // 32, 2), max(w // 32, 2), generator=gen), size=(h, w), mode="bicubic",
                        align_corners=False)
    return (0.6 * low.clamp(0, 1) + 0.35 + 0.05 * torch.rand(b, 3, h, w, generator=gen)).clamp(0, 1)


def child(spec):
    """Run one whole-model case in this (fresh) process; returns a dict of results."""
    if spec["case"] == "onnx":
        return onnx_child(spec)
    reset_peak_rss()
    device = torch.device(spec["device"])
    keep_freed_memory()  # the default process setting; run_child turns it off for mode 'release'
    torch.manual_seed(0)
    mode = spec["mode"]
    kwargs = {**spec["model"], **({"region_strategy": "masked_sum"} if mode == "release" else {})}
    fmt = torch.contiguous_format if mode in ("release", "eager") else torch.channels_last
    model = HDM(**kwargs).to(device, memory_format=fmt)
    net = compile_model(model) if mode == "compile" else model
    amp = "bf16" if mode == "bf16" else "off"
    x = image(spec["shape"]).to(device)
    if spec["case"] == "train":
        target = image(spec["shape"], seed=1).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        model.train()

        def run():
            opt.zero_grad(set_to_none=True)
            with autocast(device, amp):
                loss = (net(x).float() - target).abs().mean()
            loss.backward()
            opt.step()
    elif spec["case"] == "infer":
        model.eval()

        def run():
            with torch.no_grad(), autocast(device, amp):
                return net(x)
    else:  # tiled / untiled inference of one big image
        model.eval()
        run = lambda: restore(model, x, tile=spec["tile"], overlap=spec["overlap"])  # noqa: E731
    y, first, median = first_and_median(run, spec["repeats"], device)
    if y is not None:
        torch.save(y.float().cpu(), spec["save"])
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else peak_rss_mb()
    return {"first_s": first, "s": median, "peak_mb": peak}


def reset_peak_rss():
    """Start the peak resident set over from the current one (Linux; a child process otherwise starts
    with its parent's peak, which survives fork and exec)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(spec):
    env = dict(os.environ)
    if spec["mode"] == "release":
        env["HDM_KEEP_FREED_MEMORY"] = "0"
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)], capture_output=True,
                          text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])


def bench_hdm(level, device, conv_peak, tmp, train):
    sizes = SIZES[level]
    if train:
        side, cuda_batch, cpu_batch = sizes["train"]
        shape = (cuda_batch if device.type == "cuda" else cpu_batch, 3, side, side)
        modes = sizes["train_modes"]
    else:
        shape, modes = (1, 3, *sizes["infer"]), sizes["infer_modes"]
    flops = hdm_flops(sizes["model"], shape, train)
    rows, ref = [], None
    for mode in modes:
        spec = {"case": "train" if train else "infer", "mode": mode, "device": str(device), "shape": shape,
                "model": sizes["model"], "repeats": sizes["repeats"], "save": os.path.join(tmp, f"{mode}.pt")}
        res = run_child(spec)
        section = "hdm_train" if train else "hdm_infer"
        case = f"{shape[0]}x{shape[2]}x{shape[3]}, {flops / 1e9:.1f} GFLOP"
        row = {"section": section, "case": case, "impl": mode}
        if "error" in res:
            row["note"] = "failed: " + res["error"]
            rows.append(row)
            continue
        row.update({"ms": 1e3 * res["s"], "per s": 1 / res["s"], "first run s": res["first_s"], "peak MB": res["peak_mb"],
                    "of floor": flops / conv_peak / res["s"] if conv_peak else float("nan")})
        if not train:
            y = torch.load(spec["save"])
            ref = y if mode == "release" else ref
            row["max |diff|"] = (y - ref).abs().max().item() if ref is not None else float("nan")
        rows.append(row)
    return rows


def bench_tiled(level, device, tmp):
    sizes = SIZES[level]
    (h, w), tile, overlap = sizes["tiled"]
    outs, rows = {}, []
    for name, t in (("whole", None), (f"tiles {tile}, overlap {overlap}", tile)):
        spec = {"case": "tiled", "mode": "channels_last" if device.type == "cpu" else "eager", "device": str(device),
                "shape": (1, 3, h, w), "model": sizes["model"], "repeats": sizes["tiled_repeats"], "tile": t,
                "overlap": overlap, "save": os.path.join(tmp, f"tiled_{t}.pt")}
        res = run_child(spec)
        row = {"section": "tiled", "case": f"{w}x{h}", "impl": name}
        if "error" in res:
            row["note"] = "failed: " + res["error"]
        else:
            outs[name] = torch.load(spec["save"])
            row.update({"s": res["s"], "peak MB": res["peak_mb"]})
        rows.append(row)
    if len(outs) == 2:
        a, b = outs.values()
        mse = (a - b).square().mean().item()
        rows[1]["PSNR vs whole (dB)"] = 10 * math.log10(1 / mse) if mse > 0 else float("inf")
    return rows


def trained_configs(paths):
    """{checkpoint: its run config} of the --trained files, each checked before any section runs: a
    checkpoint train.py wrote (its run config holds the data.val whose first image is the photo), its
    weights fit its model, its data.val reads (headers checked); else one UsageError naming the file."""
    from hdm.checkpoint import load_checkpoint
    from hdm.cli.loading import load_weights
    from hdm.data.prepare import read_checked
    from hdm.errors import DataError

    configs = {}
    for path in paths:
        try:
            cfg = load_checkpoint(path).get("config") or {}
        except (OSError, RuntimeError) as err:
            raise UsageError(f"--trained: {first_line(err)}") from err
        if "model" not in cfg or not cfg.get("data", {}).get("val"):
            raise UsageError(f"--trained: {shown(path)}: holds no run config with a data.val set (the photo is its first "
                             f"image); expected a checkpoint written by train.py")
        load_weights(cfg["model"], path, torch.device("cpu"), "--trained")
        try:
            read_checked(cfg, "val")
        except DataError as err:
            raise UsageError(f"--trained: {shown(path)}: {first_line(err)}") from err
        configs[path] = cfg
    return configs


def bench_tiled_trained(level, device, tmp, trained):
    """Tiles against the whole image on trained models (trained weights make the channel attention vary,
    which random weights hide): `trained` ({checkpoint: its run config}, trained_configs), each on the
    first image of its config's data.val, resized, or a small HDM trained here briefly on the demo haze.
    Rows: the default tiling (HDM and AECR-Net split, the hybrid network in strips) at overlaps 48 and 32,
    and whole-model tiles blended with ramps (the earlier approach)."""
    from hdm.config import load_config
    from hdm.data import build_dataset
    from hdm.data.demo import make_demo
    from hdm.engine import fit
    from hdm.inference import _replicate_pad, _restore_blended, load_model
    from hdm.metrics import psnr_rgb

    spec = SIZES[level]["trained"]
    if not trained:
        root = make_demo("haze", os.path.join(tmp, "haze"), samples_per_photo=2)
        cfg = load_config(os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), [
            f"work_dir={tmp}", "name=tiled_trained", f"train.iterations={spec['iterations']}", "train.log_every=1000",
            f"train.save_every={spec['iterations']}", "train.val_every=100000", "train.batch_size=4",
            f"data.train.lq_dir={root}/train/hazy", f"data.train.gt_dir={root}/train/clear",
            f"data.val.lq_dir={root}/val/hazy", f"data.val.gt_dir={root}/val/clear", f"device={device.type}"])
        fit(cfg)
        trained = {os.path.join(tmp, "tiled_trained", "checkpoints", f"iter_{spec['iterations']}.pth"): cfg}
    h, w = spec["photo"]
    rows = []
    for path, cfg in trained.items():
        model = load_model(cfg["model"], path, device)
        sample = build_dataset(cfg["data"]["val"])[0]
        lq, gt = (F.interpolate(sample[k][None], size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1).to(device)
                  for k in ("lq", "gt"))
        name = f"{cfg['model']['type']} ({os.path.basename(os.path.dirname(os.path.dirname(path)))})"
        with torch.no_grad():
            whole = restore(model, lq)
            x = _replicate_pad(lq, (-h) % 4, (-w) % 4)
            mask = model.region_masks(x) if hasattr(model, "region_masks") else None
            for tile in spec["tiles"]:
                for impl, overlap in (("blended whole-model tiles", 32), ("default", 48), ("default", 32)):
                    if impl.startswith("blended"):
                        out = _restore_blended(model, x, tile, overlap, mask, {})[..., :h, :w]
                    else:
                        out = restore(model, lq, tile=tile, overlap=overlap)
                    rows.append({"section": "tiled_trained", "case": f"{name}, {w}x{h}, tile {tile}, overlap {overlap}",
                                 "impl": impl, "max diff vs whole (/255)": (out - whole).abs().max().item() * 255,
                                 "PSNR vs whole (dB)": psnr_rgb(out, whole).item(),
                                 "dPSNR to target (dB)": psnr_rgb(out, gt).item() - psnr_rgb(whole, gt).item()})
    return rows


# ---------------------------------------------------------------- table

ONNX_ROUTES = ("onnxruntime", "torch eager (NCHW)", "torch CPU defaults (channels_last)")
INT8_ROUTE = "onnxruntime int8"  # the networks' quantised graph (hdm.deploy.quantize), beside ONNX_ROUTES


def onnx_child(spec):
    """One route of the onnx section in this (fresh) process: the seconds of each timed call after a
    warm-up, the peak resident memory the run added over the process's start, the output saved as .npy;
    with `profile`, for ONNX Runtime also the time of each operator type (its profiler, a separate
    session after the timing) and of HDM's NumPy masks."""
    from hdm.deploy.onnx_model import OnnxModel, session_options
    from hdm.export import Deployed
    from hdm.models import build_model

    start = peak_rss_mb()
    reset_peak_rss()
    x = image(spec["shape"]).numpy()
    result = {}
    if spec["route"] in ("onnxruntime", INT8_ROUTE):
        model = OnnxModel(spec["onnx"])
        run = lambda: model.run_batch(x)  # noqa: E731
    else:
        keep_freed_memory()  # as hdm-predict runs a model on the CPU (hdm-predict --onnx does not import torch)
        torch.manual_seed(0)
        net = build_model(spec["model"])
        if spec["weights"]:
            net.load_state_dict(torch.load(spec["weights"]))
        fmt = torch.contiguous_format if "NCHW" in spec["route"] else torch.channels_last
        net = Deployed(net.to(memory_format=fmt))
        xin = torch.from_numpy(x).to(memory_format=fmt)

        def run():
            with torch.inference_mode():
                return net(xin).numpy()
    out = run()  # the first call warms up
    result["times"] = call_times(run, spec["repeats"], torch.device("cpu"), warmup=0)
    result["peak_mb"] = peak_rss_mb() - start
    np.save(spec["save"], out)
    if spec["route"] == "onnxruntime" and spec["profile"]:
        result["profile"] = onnx_profile(spec["onnx"], model, x, session_options)
        if model.masks is not None:  # the graph's inputs without the graph: HDM's NumPy masks
            result["masks_s"] = median_time(lambda: model.feeds(x), spec["repeats"], torch.device("cpu"))
    return result


def onnx_profile(path, model, x, session_options):
    """{operator type: ms per run} from ONNX Runtime's profiler: a session made as OnnxModel makes it,
    one run to warm up, the two after it counted."""
    import onnxruntime as ort

    options = session_options()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(os.path.dirname(path), "profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = model.feeds(x)
    for _ in range(3):
        session.run(None, feeds)
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    first = min((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    ops = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first["ts"] + first["dur"]:
            ops[e["args"]["op_name"]] = ops.get(e["args"]["op_name"], 0.0) + e["dur"] / 2e3
    return ops


def bench_onnx(level, device, tmp):
    """Each deployable model (random weights) exported by hdm.export, then one image per size restored
    by ONNX Runtime (OnnxModel, as hdm-predict --onnx runs it: HDM's masks in NumPy), by PyTorch eager
    in NCHW and by PyTorch with the tools' CPU defaults (channels_last), in rounds (onnx_rounds); then
    where ONNX Runtime's time goes, per operator type (onnx profile rows)."""
    from hdm.deploy.quantize import psnr_db
    from hdm.export import CHECK_SIZES, check_photos, export
    from hdm.models import build_model

    if device.type != "cpu":
        return [{"section": "onnx", "case": "-", "impl": "-", "note": "CPU only (ONNX Runtime's CPU provider)"}]
    sizes = SIZES[level]["onnx"]
    repeats = sizes["repeats"]
    rows, profile_rows, options_rows = [], [], []
    for cfg in sizes["models"]:
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        path = os.path.join(tmp, f"{cfg['type']}.onnx")
        weights = None
        if any(True for _ in model.parameters()):
            weights = os.path.join(tmp, f"{cfg['type']}.pt")
            torch.save(model.state_dict(), weights)
        record = {"weights": None, "iteration": None, "chosen": "random weights (benchmark)"}
        t0 = time.perf_counter()
        export(model, path, {"model": cfg}, record)
        export_s = time.perf_counter() - t0
        int8 = None
        if weights:
            int8 = path.replace(".onnx", "-int8.onnx")
            crops = [(f"check crop {h}x{w}", x[0].transpose(1, 2, 0)) for (h, w), x in zip(CHECK_SIZES, check_photos())]
            export(model, int8, {"model": cfg}, record, calibration=(crops, 0.0))
        for photo in sizes["photos"]:
            case = f"{cfg['type']} {photo[0]}x{photo[1]}"
            results = onnx_rounds(cfg, weights, {"onnxruntime": path, INT8_ROUTE: int8}, photo, sizes["rounds"],
                                  repeats, tmp)
            ort_res = results["onnxruntime"]
            for route, res in results.items():
                row = {"section": "onnx", "case": case, "impl": route}
                if "error" in res:  # each route's own failure (a killed process: "no output")
                    rows.append({**row, "note": "failed: " + res["error"]})
                    continue
                row.update({"ms": 1e3 * res["s"], "peak MB": res["peak_mb"]})
                defaults = results["torch CPU defaults (channels_last)"]
                if route == "onnxruntime":
                    row["export s"] = export_s
                elif route == INT8_ROUTE:
                    if "error" not in defaults:
                        row["speed-up over the CPU defaults"] = defaults["s"] / res["s"]
                    if "error" not in ort_res:
                        row["PSNR vs float32 (dB)"] = psnr_db(np.load(res["out"]), np.load(ort_res["out"]))
                elif "error" not in ort_res:
                    row["onnxruntime speed-up"] = res["s"] / ort_res["s"]
                    row["max |diff|"] = float(np.abs(np.load(res["out"]) - np.load(ort_res["out"])).max())
                rows.append(row)
            if "error" not in ort_res:
                profile_rows += onnx_profile_rows(case, ort_res)
        options_rows += onnx_option_rows(f"{cfg['type']} {sizes['photos'][0][0]}x{sizes['photos'][0][1]}", path,
                                         sizes["photos"][0], SIZES[level]["repeats"])
    return rows + profile_rows + options_rows


def onnx_rounds(cfg, weights, paths, photo, rounds, repeats, tmp):
    """{route: {"s": median seconds, "peak_mb": largest peak, "out": .npy path, ...}}: every route in its
    own process (`paths`: the ONNX file of "onnxruntime" and of INT8_ROUTE, None where there is none),
    `rounds` times in turn (ONNX Runtime, then each PyTorch route, then again), each process
    timing `repeats` calls after a warm-up, so that a slower minute of the machine falls on every route
    alike; the median is over all the rounds' calls. The first round's ONNX Runtime process also
    profiles. A route that fails in any round is reported with its error."""
    results = {}
    routes = ONNX_ROUTES + ((INT8_ROUTE,) if paths.get(INT8_ROUTE) else ())
    for k in range(rounds):
        for route in routes:
            save = os.path.join(tmp, f"out-{routes.index(route)}.npy")
            spec = {"case": "onnx", "route": route, "model": cfg, "weights": weights, "onnx": paths.get(route), "mode": route,
                    "shape": (1, 3, *photo), "repeats": repeats, "save": save, "profile": k == 0 and route == "onnxruntime"}
            res = run_child(spec)
            done = results.setdefault(route, {"times": [], "peak_mb": 0.0, "out": save})
            if "error" in res or "error" in done:
                done.setdefault("error", res.get("error"))
                continue
            done["times"] += res["times"]
            done["peak_mb"] = max(done["peak_mb"], res["peak_mb"])
            done.update({key: res[key] for key in ("profile", "masks_s") if key in res})
    for res in results.values():
        if "error" not in res:
            res["s"] = float(np.median(res["times"]))
    return results


def onnx_option_variants():
    import onnxruntime as ort

    level = ort.GraphOptimizationLevel
    return {"defaults (OnnxModel)": {},
            "graph optimisation: extended": {"graph_optimization_level": level.ORT_ENABLE_EXTENDED},
            "graph optimisation: basic": {"graph_optimization_level": level.ORT_ENABLE_BASIC},
            "enable_cpu_mem_arena off": {"enable_cpu_mem_arena": False},
            "enable_mem_pattern off": {"enable_mem_pattern": False},
            "execution mode: parallel (2 inter-op threads)": {"execution_mode": ort.ExecutionMode.ORT_PARALLEL,
                                                              "inter_op_num_threads": 2},
            "no spinning": {"config": ("session.intra_op.allow_spinning", "0")},
            "1 intra-op thread": {"intra_op_num_threads": 1}}


def onnx_option_rows(case, path, photo, repeats):
    """ONNX Runtime's session options against OnnxModel's (its defaults): one session per variant, the
    runs interleaved so that a slower minute of the machine falls on every variant alike."""
    import onnxruntime as ort

    from hdm.deploy.onnx_model import OnnxModel, session_options

    feeds = OnnxModel(path).feeds(image((1, 3, *photo)).numpy())
    sessions = {}
    for name, settings in onnx_option_variants().items():
        options = session_options()
        for key, value in settings.items():
            if key == "config":
                options.add_session_config_entry(*value)
            else:
                setattr(options, key, value)
        sessions[name] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        sessions[name].run(None, feeds)
    times = {name: [] for name in sessions}
    for _ in range(max(repeats, 1)):
        for name, session in sessions.items():
            t0 = time.perf_counter()
            session.run(None, feeds)
            times[name].append(time.perf_counter() - t0)
    base = float(np.median(times["defaults (OnnxModel)"]))
    return [{"section": "onnx options", "case": case, "impl": name, "ms": 1e3 * float(np.median(t)),
             "vs defaults": float(np.median(t)) / base} for name, t in times.items()]


def onnx_profile_rows(case, res, top=6):
    """The `top` operator types by time, the rest summed, and HDM's NumPy masks (timed apart), as shares
    of their sum."""
    ops = sorted(res["profile"].items(), key=lambda kv: -kv[1])
    total = sum(ms for _, ms in ops) + 1e3 * res.get("masks_s", 0)
    parts = ops[:top] + ([("(other operators)", sum(ms for _, ms in ops[top:]))] if ops[top:] else [])
    if "masks_s" in res:
        parts.append(("(NumPy masks, outside the graph)", 1e3 * res["masks_s"]))
    return [{"section": "onnx profile", "case": case, "impl": name, "ms": ms, "% of the run": 100 * ms / total}
            for name, ms in parts]


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def markdown(rows, header):
    out = [header]
    for section in dict.fromkeys(r["section"] for r in rows):
        srows = [r for r in rows if r["section"] == section]
        keys = list(dict.fromkeys(k for r in srows for k in r if k not in ("section", "case", "impl")))
        out += ["", f"### {section}", "", "| case | impl | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for r in srows:
            out.append(f"| {r['case']} | {r['impl']} | " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |")
    return "\n".join(out) + "\n"


def table_name(level, sections):
    """The table a run writes: <level> for every section (full, quick, tiny), else the sections' names
    (onnx, tiled-trained, ...; with the level unless full), so a run of some sections never replaces the
    whole table."""
    if set(sections) == set(SECTIONS):
        return level
    return "-".join(s.replace("_", "-") for s in sections) + ("" if level == "full" else f"-{level}")


def main(argv=None):
    parser = Parser(__doc__)
    level_group = parser.add_mutually_exclusive_group()
    level_group.add_argument("--quick", action="store_true", help="fewer repeats and cases (a few minutes on CPU)")
    level_group.add_argument("--tiny", action="store_true", help="every section once at toy sizes (a smoke run)")
    parser.add_argument("--device", type=device_name, default="auto")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md (default benchmarks/<device>-<level> for "
                                                    "every section, benchmarks/<device>-<sections>[-<level>] for some)")
    parser.add_argument("--trained", nargs="+", type=existing_file, default=(),
                        help="checkpoints for tiled_trained (e.g. the demo's); default: train a small HDM briefly")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out table (OUT.json, OUT.md)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return None
    if args.trained and "tiled_trained" not in args.sections:
        parser.error("--trained: expected with the section that uses it (--sections ... tiled_trained)")
    level = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = SIZES[level]
    device = resolve_device(args.device)
    out = args.out or os.path.join(ROOT, "benchmarks", f"{device.type}-{table_name(level, args.sections)}")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        parser.error(f"--out {shown(out)}: expected a writable folder {shown(folder)} for its .json and .md")
    existing = [path for path in (out + ".json", out + ".md") if os.path.lexists(path)]
    if args.out and existing and not args.overwrite:  # the default names the table of these sections and level
        parser.error(f"--out {shown(out)}: {shown(existing[0])} exists; give --overwrite to replace it, or another --out")
    trained = trained_configs(args.trained)
    if device.type == "cpu":
        keep_freed_memory()  # as the tools run models on the CPU
    repeats = sizes["repeats"]
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if "conv" in args.sections:
            rows += bench_conv(sizes["conv"], repeats, device)
        conv_peak = max((r["GFLOP/s"] for r in rows if r["section"] == "conv"), default=0) * 1e9
        if "dcn" in args.sections:
            rows += bench_dcn(sizes["dcn"], repeats, device)
        if "masks" in args.sections:
            rows += bench_masks(sizes["masks"], repeats, device)
        if "region_conv" in args.sections:
            rows += bench_region_conv(sizes["region"], repeats, device)
        if "hdm_infer" in args.sections:
            rows += bench_hdm(level, device, conv_peak, tmp, train=False)
        if "hdm_train" in args.sections:
            rows += bench_hdm(level, device, conv_peak, tmp, train=True)
        if "svrnn" in args.sections:
            rows += bench_svrnn(sizes["svrnn"], repeats, device)
        if "tiled" in args.sections:
            rows += bench_tiled(level, device, tmp)
        if "tiled_trained" in args.sections:
            rows += bench_tiled_trained(level, device, tmp, trained)
        if "onnx" in args.sections:
            rows += bench_onnx(level, device, tmp)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    features = f" (CPU features: {', '.join(cpu_features()) or 'unknown'})" if device.type == "cpu" else ""
    header = (f"device {name}{features}, {torch.get_num_threads()} threads, torch {torch.__version__}, float32 unless a row says "
              f"otherwise; median of {repeats} after a warm-up; level {level}; conv peak "
              f"{conv_peak / 1e9:.0f} GFLOP/s (floor = FLOPs / peak; 'of floor' = floor / measured time); "
              f"{time.perf_counter() - started:.0f} s in all")
    if "onnx" in args.sections and device.type == "cpu":
        import onnxruntime

        onnx = sizes["onnx"]
        header += (f"; onnx rows: onnxruntime {onnxruntime.__version__}, the median of {onnx['rounds']} rounds of "
                   f"{onnx['repeats']} calls per route, each after a warm-up in its own process")
    table = markdown(rows, header)
    print(table)
    with atomic_write(out + ".json", "w") as f:
        json.dump({"header": header, "level": level, "device": name, "rows": rows}, f, indent=1)
    with atomic_write(out + ".md", "w") as f:
        f.write(table)
    return rows


if __name__ == "__main__":
    console(main)
