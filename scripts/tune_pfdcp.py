"""Search PF-DCP's fusion weight on a training set, as the PF-DCP paper did on RESIDE's ITS (indoor)
and OTS (outdoor): mean PSNR/SSIM for each candidate weight, and the best one.

    # doc-test: skip (a grid search over the demo's training set: minutes)
    python scripts/tune_pfdcp.py PairedFolder lq_dir=datasets/demo/haze/train/hazy gt_dir=datasets/demo/haze/train/clear
    # doc-test: skip (needs RESIDE ITS)
    python scripts/tune_pfdcp.py RESIDE root=datasets/RESIDE/ITS --limit 200

Arguments after the dataset type are its constructor arguments. --limit evaluates a fixed random
subset (seeded) to keep the search affordable on large sets. The set is checked from the image headers
before any image is scored (readable, pairs of one size, targets, large enough for --preset).
"""

import torch
from torch.utils.data import Subset

from hdm.cli import Parser, UsageError, console, device_name, first_line, fraction, positive_int
from hdm.config import parse_value
from hdm.data import DATASETS
from hdm.data.prepare import check_scored, read_checked
from hdm.device import resolve_device
from hdm.errors import DataError
from hdm.evaluation import evaluate, summarize
from hdm.metrics import SCORES, get_metric
from hdm.models import PFDCP

PRESETS = [p for p, scores in SCORES.items() if {"psnr", "ssim"} <= set(scores)]  # the table is of PSNR and SSIM


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("type", choices=list(DATASETS))
    parser.add_argument("kwargs", nargs="*", help="dataset arguments key=value")
    parser.add_argument("--weights", type=fraction, nargs="+", default=[round(0.1 * i, 1) for i in range(10)],
                        help="candidate fusion weights, each in [0, 1]")
    parser.add_argument("--limit", type=positive_int, default=None, help="evaluate this many images (a seeded random subset)")
    parser.add_argument("--preset", default="ffa_rgb", choices=PRESETS)
    parser.add_argument("--device", type=device_name, default="auto")
    args = parser.parse(argv)
    bad = [a for a in args.kwargs if "=" not in a]
    if bad:
        parser.error(f"dataset arguments: expected key=value, got {bad[0]!r}")
    # the set as a config's data section: its errors name data.<type>.<argument>, shown as <type>.<argument>
    cfg = {"model": {"type": "PFDCP"},
           "data": {args.type: {"type": args.type, **{k: parse_value(v) for k, _, v in (a.partition("=") for a in args.kwargs)}}}}
    try:
        dataset, report, _ = read_checked(cfg, args.type)
        check_scored(cfg, args.type, dataset, report, {args.preset: {}})  # targets, and the preset's least image
    except DataError as err:
        raise UsageError(first_line(err).removeprefix("data.")) from err
    if args.limit and args.limit < len(dataset):
        dataset = Subset(dataset, torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[: args.limit].tolist())
    device = resolve_device(args.device)
    metric = get_metric(args.preset)
    print(f"{len(dataset)} images, preset {args.preset}")
    print("| weight | PSNR (dB) | SSIM |\n|---|---|---|")
    results = {}
    with torch.inference_mode():
        for w in args.weights:
            mean = summarize(evaluate(PFDCP(weight=w).to(device), dataset, metric, device)[0])
            results[w] = mean
            print(f"| {w:.2f} | {mean['psnr']:.2f} | {mean['ssim']:.4f} |", flush=True)
    best = max(results, key=lambda w: results[w]["psnr"])
    print(f"best weight by PSNR: {best:.2f} ({results[best]['psnr']:.2f} dB)")
    return best, results


if __name__ == "__main__":
    console(main)
