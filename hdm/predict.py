"""Restore images without targets: a file or a folder in, a folder out.

    hdm-predict INPUT OUTPUT_DIR -c configs/dehaze/hdm_its.yaml --weights W.pth
    hdm-predict INPUT OUTPUT_DIR --models derain.yaml:derain.pth dehaze.yaml:dehaze.pth   # a cascade
    hdm-predict INPUT OUTPUT_DIR -c CONFIG --weights W --tile 512 --overlap 32 --amp --device cuda
    hdm-predict INPUT OUTPUT_DIR -c configs/baselines/dcp_sots.yaml --save-maps   # no weights: DCP

Any image size works (the models pad and crop); --tile splits large images into overlapping tiles.
With --models, each model restores the previous one's output (HDM paper Fig. 6: derain, then dehaze).
Unreadable inputs are skipped with one error line each, and the exit code is then 1; outputs are
written atomically, so no partial file is left behind.
"""
import argparse
import os
import sys
import time

import torch

from hdm.config import ConfigError, load_config
from hdm.data.io import ensure_writable, images_in, is_image, read_image, to_tensor, write_image
from hdm.engine import resolve_device
from hdm.inference import autocast, colour_maps, load_model, restore


def load_models(specs, device):
    """[(config path, weights path or None)] -> models ready for inference."""
    models = []
    for cfg_path, weights in specs:
        try:
            model = load_model(load_config(cfg_path)["model"], weights, device)
        except (ConfigError, ValueError) as err:
            raise SystemExit(f"{cfg_path}: {err}")
        if model.extra_inputs:
            raise SystemExit(f"{cfg_path}: the model needs {model.extra_inputs} besides the image; predict cannot supply it")
        models.append(model)
    return models


def inputs_of(path):
    if os.path.isdir(path):
        return images_in(path)
    if os.path.isfile(path):
        return [path]
    raise SystemExit(f"{path}: no such file or folder")


def parse_model_specs(args, parser):
    if args.models:
        specs = []
        for item in args.models:
            cfg_path, sep, weights = item.partition(":")
            specs.append((cfg_path, weights or None))  # CONFIG alone for parameter-free models
        return specs
    if not args.config:
        parser.error("give -c CONFIG [--weights W] or --models CONFIG:WEIGHTS ...")
    return [(args.config, args.weights)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hdm-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("output", help="output folder (created); outputs keep the input names, as .png")
    parser.add_argument("-c", "--config")
    parser.add_argument("--weights")
    parser.add_argument("--models", nargs="+", help="a cascade of CONFIG:WEIGHTS, applied in order")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (multiple of 4)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (multiple of 4)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="autocast: bf16 on CPU, fp16 on CUDA")
    parser.add_argument("--save-maps", action="store_true",
                        help="also write the first model's dark channel, transmission and region masks (colour-mapped)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    models = load_models(parse_model_specs(args, parser), device)
    files = inputs_of(args.input)
    if not files:
        raise SystemExit(f"{args.input}: no images found")
    try:
        ensure_writable(args.output)
    except OSError as err:
        raise SystemExit(f"error: {err}")
    failures = 0
    start = time.time()
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0] + ".png"
        try:
            if not is_image(path):
                raise OSError(f"{path}: not an image file name")
            x = to_tensor(read_image(path)).unsqueeze(0).to(device)
            with torch.inference_mode(), autocast(device, "auto" if args.amp else "off"):
                for model in models:
                    x = restore(model, x, tile=args.tile, overlap=args.overlap).float()
                if args.save_maps and hasattr(models[0], "maps"):
                    lq = to_tensor(read_image(path)).unsqueeze(0).to(device)
                    for key, img in colour_maps(models[0].maps(lq), lq.shape[-2:]).items():
                        write_image(os.path.join(args.output, f"{os.path.splitext(name)[0]}_{key}.png"), img)
            write_image(os.path.join(args.output, name), x[0].permute(1, 2, 0))
        except (OSError, ValueError) as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
        except RuntimeError as err:  # allocation failures; anything else is a bug and keeps its traceback
            if "memory" not in str(err).lower() and "alloc" not in str(err).lower():
                raise
            failures += 1
            print(f"error: {path}: too large to restore in memory on {device} ({str(err).splitlines()[0][:80]}); "
                  f"use --tile 512", file=sys.stderr)
    done = len(files) - failures
    print(f"restored {done} of {len(files)} image(s) into {args.output} in {time.time() - start:.1f} s")
    return 1 if failures else 0


def console():
    sys.exit(main())


if __name__ == "__main__":
    console()
