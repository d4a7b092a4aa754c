"""Operator benchmarks: deformable-conv backends and DCP region masks (median of repeats after warm-up).

    python scripts/benchmark.py [--repeats 5] [--json out.json] [--tiny]

Sections
- dcn: forward and forward+backward of every available backend at the HDM feature size of a batch
  of 16 240x240 crops (16x64x60x60) and of one SOTS image (1x64x115x155).
- masks: the batched torch DCP masks (hdm.ops.dcp) against the per-image NumPy/OpenCV/PIL version of
  the release's procedure (tests/reference_dcp.py), at batch 16 of 240x240 and one 460x620 image.
- svrnn: the spatially variant RNN (hdm.ops.svrnn, a log-depth parallel scan) against the Python
  loop over columns of tests/test_ops_svrnn.py, left-to-right, batch 4 x 32 channels at 128x128 and
  512x512, forward and forward+backward.
--tiny runs every section once at small sizes (used by the test suite to check the script works).
"""
import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hdm.ops import available_backends, modulated_deform_conv2d  # noqa: E402
from hdm.ops.dcp import dcp_region_masks  # noqa: E402
from hdm.ops.svrnn import spatial_rnn  # noqa: E402
from tests.reference_dcp import release_masks  # noqa: E402
from tests.test_ops_svrnn import loop_reference  # noqa: E402


def timeit(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_dcn(shapes, repeats):
    rows = []
    for b, c, h, w in shapes:
        x = torch.randn(b, c, h, w)
        offset = torch.randn(b, 18, h, w) * 2
        mask = torch.rand(b, 9, h, w)
        weight = torch.randn(c, c, 3, 3) * 0.05
        bias = torch.zeros(c)
        for backend in available_backends():
            def fwd():
                with torch.no_grad():
                    modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, backend=backend)

            args = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]

            def fwd_bwd():
                modulated_deform_conv2d(*args, 1, 1, 1, backend=backend).sum().backward()

            rows.append({"section": "dcn", "case": f"{b}x{c}x{h}x{w}", "impl": backend,
                         "forward_ms": 1e3 * timeit(fwd, repeats), "fwd_bwd_ms": 1e3 * timeit(fwd_bwd, repeats)})
    return rows


def bench_masks(cases, repeats):
    rows = []
    for b, h, w in cases:
        imgs = torch.rand(b, 3, h, w)
        imgs_u8 = [np.ascontiguousarray((imgs[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for i in range(b)]
        t_torch = timeit(lambda: dcp_region_masks(imgs), repeats)
        t_ref = timeit(lambda: [release_masks(im) for im in imgs_u8], repeats)
        case = f"batch {b} of {h}x{w}"
        rows.append({"section": "masks", "case": case, "impl": "torch batched", "ms_per_image": 1e3 * t_torch / b})
        rows.append({"section": "masks", "case": case, "impl": "numpy per image (release)", "ms_per_image": 1e3 * t_ref / b})
    return rows


def bench_svrnn(sizes, repeats, batch=4, channels=32):
    rows = []
    for size in sizes:
        x, g, p = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size), torch.rand(batch, channels, size, size)
        for impl, fn in (("python loop", loop_reference), ("parallel scan", spatial_rnn)):
            def fwd():
                with torch.no_grad():
                    fn(x, g, p, "left_right")
            args = [t.clone().requires_grad_() for t in (x, g, p)]

            def fwd_bwd():
                fn(*args, "left_right").sum().backward()
            rows.append({"section": "svrnn", "case": f"{batch}x{channels}x{size}x{size}", "impl": impl,
                         "forward_ms": 1e3 * timeit(fwd, repeats), "fwd_bwd_ms": 1e3 * timeit(fwd_bwd, repeats)})
    return rows


def markdown(rows, header):
    out = [header, "| section | case | impl | " + " | ".join(k for k in rows[0] if k not in ("section", "case", "impl")) + " |"]
    for section in dict.fromkeys(r["section"] for r in rows):
        keys = [k for k in next(r for r in rows if r["section"] == section) if k not in ("section", "case", "impl")]
        out.append(f"\n| {section} case | impl | " + " | ".join(keys) + " |")
        out.append("|---|---|" + "---|" * len(keys))
        for r in rows:
            if r["section"] == section:
                out.append(f"| {r['case']} | {r['impl']} | " + " | ".join(f"{r[k]:.1f}" for k in keys) + " |")
    return "\n".join([out[0]] + out[2:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    parser.add_argument("--tiny", action="store_true", help="one repeat at small sizes (a smoke run)")
    args = parser.parse_args(argv)
    if args.tiny:
        repeats, dcn_shapes, mask_cases, scan_sizes = 1, [(2, 8, 12, 12)], [(2, 48, 64)], [16]
    else:
        repeats, dcn_shapes, mask_cases = args.repeats, [(16, 64, 60, 60), (1, 64, 115, 155)], [(16, 240, 240), (1, 460, 620)]
        scan_sizes = [128, 512]
    rows = bench_dcn(dcn_shapes, repeats) + bench_masks(mask_cases, repeats) + bench_svrnn(scan_sizes, repeats)
    header = (f"device cpu, {torch.get_num_threads()} threads, torch {torch.__version__}, float32, "
              f"median of {repeats} after 1 warm-up")
    print(markdown(rows, header))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
