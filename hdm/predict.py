"""Restore images without targets: a file or a folder in, a folder out.

    hdm-predict INPUT OUTPUT_DIR --weights runs/hdm_its/checkpoints/iter_100000.pth   # the config stored in it
    hdm-predict INPUT OUTPUT_DIR -c configs/dehaze/hdm_its.yaml --weights W.pth
    hdm-predict INPUT OUTPUT_DIR --weights W.pth model.region_strategy=masked_sum       # dotted overrides
    hdm-predict INPUT OUTPUT_DIR --models derain.yaml:derain.pth dehaze.yaml:dehaze.pth   # a cascade
    hdm-predict INPUT OUTPUT_DIR -c CONFIG --weights W --tile 512 --overlap 32 --amp --device cuda
    hdm-predict INPUT OUTPUT_DIR -c configs/baselines/dcp_sots.yaml --save-maps   # no weights: DCP

Any image size works (the models pad and crop); --tile splits large images into overlapping tiles.
With --models, each model restores the previous one's output (HDM paper Fig. 6: derain, then dehaze).
Unreadable inputs are skipped with one error line each, and the exit code is then 1; outputs are
written atomically, so no partial file is left behind.
"""
import argparse
import copy
import os
import sys
import time

import torch

from hdm.checkpoint import load_checkpoint
from hdm.config import DEFAULTS, ConfigError, apply_override, load_config, merge, validate
from hdm.data.io import ensure_writable, images_in, is_image, read_image, to_tensor, write_image
from hdm.engine import resolve_device
from hdm.inference import autocast, colour_maps, load_model, restore


def model_config(cfg_path, weights, overrides=()):
    """The model section of a config file, or, without one, of the config stored in the checkpoint
    (train.py stores the run's config; converted release weights their model), with dotted overrides."""
    if cfg_path:
        return load_config(cfg_path, overrides)["model"]
    try:
        ckpt = load_checkpoint(weights)
    except (OSError, RuntimeError) as err:
        raise ConfigError(str(err).splitlines()[0]) from err
    stored = ckpt.get("config") or ({"model": ckpt["model_config"]} if "model_config" in ckpt else None)
    if stored is None:
        raise ConfigError(f"{weights}: holds no config; give -c CONFIG")
    cfg = merge(DEFAULTS, copy.deepcopy(stored))
    for text in overrides:
        apply_override(cfg, text)
    return validate(cfg)["model"]


def load_models(specs, device, overrides=()):
    """[(config path or None, weights path or None)] -> models ready for inference."""
    models = []
    for cfg_path, weights in specs:
        try:
            model = load_model(model_config(cfg_path, weights, overrides), weights, device)
        except (ConfigError, ValueError) as err:
            raise SystemExit(f"{cfg_path or weights}: {err}")
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
    if not args.config and not args.weights:
        parser.error("give --weights W (its stored config), -c CONFIG [--weights W], or --models CONFIG:WEIGHTS ...")
    return [(args.config, args.weights)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hdm-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("output", help="output folder (created); outputs keep the input names, as .png")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the config, e.g. model.region_strategy=auto")
    parser.add_argument("-c", "--config", help="YAML config (default: the config stored in --weights)")
    parser.add_argument("--weights")
    parser.add_argument("--models", nargs="+", help="a cascade of CONFIG:WEIGHTS, applied in order")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (multiple of 4)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (multiple of 4)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="autocast: bf16 on CPU, fp16 on CUDA")
    parser.add_argument("--save-maps", action="store_true",
                        help="also write the first model's dark channel, transmission and region masks (colour-mapped)")
    args = parser.parse_intermixed_args(argv)
    device = resolve_device(args.device)
    models = load_models(parse_model_specs(args, parser), device, args.overrides)
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
