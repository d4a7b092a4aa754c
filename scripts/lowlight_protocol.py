"""The test protocol of Ren et al. (TIP 2019) Tables II and III: clean images darkened by gamma 3 plus
1 % Gaussian noise (fixed seed), restored by a model, scored by PSNR/SSIM and the HSV errors.

    python scripts/lowlight_protocol.py -c configs/lowlight/hybrid_lol.yaml \
        --weights runs/hybrid_lol/checkpoints/best.pth --clean DIR

Writes per_image.csv, summary.md and meta.json into --out (preset lol_rgb: uint8 RGB PSNR/SSIM,
MSE of H and S in [0, 1] and of V in [0, 255], MSE_hsv their mean, as the paper's Table III).
"""
import os

import torch

from hdm.cli import (
    Parser,
    UsageError,
    console,
    existing_file,
    existing_folder,
    first_line,
    fraction,
    non_negative_int,
    positive_float,
)
from hdm.cli.loading import load_weights
from hdm.config import load_config
from hdm.data import DarkenedFolder
from hdm.device import resolve_device
from hdm.errors import shown
from hdm.evaluation import evaluate, summarize
from hdm.metrics import get_metric, least_side
from hdm.outputs import claimed_results, model_inputs, results_line
from hdm.results import provenance, write_results

# DarkenedFolder's arguments, by the options that give them (its errors start with the argument's name)
OPTIONS = {"root": "--clean", "gamma": "--gamma", "noise": "--noise", "seed": "--seed"}


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--weights", required=True, type=existing_file)
    parser.add_argument("--clean", required=True, type=existing_folder, help="folder of clean test images")
    parser.add_argument("--gamma", type=positive_float, default=3.0, help="darkening exponent (> 0)")
    parser.add_argument("--noise", type=fraction, default=0.01, help="Gaussian sigma on [0, 1] images (0.01 = 1 %%)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", default=None, help="results folder (default: <clean>_protocol, or a new _2, _3, ... "
                                                    "when that one holds results)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may hold earlier results: they are moved to <out>.old-<time> (nothing is deleted)")
    args = parser.parse(argv)
    cfg = load_config(args.config)
    try:
        dataset = DarkenedFolder(args.clean, gamma=(args.gamma, args.gamma), noise=(args.noise, args.noise), seed=args.seed)
        h, w, path = dataset.check().smallest  # every image's header, before any is restored
    except (ValueError, OSError) as err:
        name, _, rest = first_line(err).partition(": ")
        raise UsageError(f"{OPTIONS[name]}: {rest}" if name in OPTIONS else f"--clean: {first_line(err)}") from err
    if min(h, w) < least_side("lol_rgb"):
        raise UsageError(f"--clean: {shown(path)} is {w}x{h}; lol_rgb scores images of at least {least_side('lol_rgb')} x "
                         f"{least_side('lol_rgb')} pixels")
    device = resolve_device(cfg["device"])
    model = load_weights(cfg["model"], args.weights, device)
    inputs = [args.clean, *model_inputs([(args.config, args.weights)])]
    with claimed_results(args.out, os.path.abspath(args.clean) + "_protocol", args.overwrite, inputs) as (out_dir, moved):
        with torch.inference_mode():
            rows, _ = evaluate(model, dataset, get_metric("lol_rgb"), device)
        meta = {**provenance("lol_rgb", {}), "weights": args.weights, "clean": args.clean, "gamma": args.gamma,
                "noise": args.noise, "seed": args.seed, "images": len(rows)}
        print(write_results(out_dir, rows, f"{cfg['model']['type']} ({shown(os.path.basename(args.weights))})", meta) +
              results_line(out_dir, moved))
    return summarize(rows)


if __name__ == "__main__":
    console(main)
