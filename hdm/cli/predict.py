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
import copy
import os
import sys
import time

import torch

from hdm.checkpoint import load_checkpoint
from hdm.cli import Parser, UsageError, console, first_line
from hdm.config import DEFAULTS, ConfigError, apply_override, load_config, merge, validate
from hdm.data.io import read_image_tensor
from hdm.device import amp_mode, autocast, keep_freed_memory, resolve_device
from hdm.image_io import ensure_writable, images_in, is_image, write_image
from hdm.inference import colour_maps, load_model, restore


def model_config(cfg_path, weights, overrides=()):
    """The model section of a config file, or, without one, of the config stored in the checkpoint
    (train.py stores the run's config; converted release weights their model), with dotted overrides."""
    if cfg_path:
        return load_config(cfg_path, overrides)["model"]
    try:
        ckpt = load_checkpoint(weights)
    except (OSError, RuntimeError) as err:
        raise UsageError(f"--weights: {first_line(err)}") from err
    stored = ckpt.get("config") or ({"model": ckpt["model_config"]} if "model_config" in ckpt else None)
    if stored is None:
        raise UsageError(f"{weights}: holds no config; give -c CONFIG")
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
        except ConfigError as err:
            raise ConfigError(f"{cfg_path or weights}: {err}") from err
        except (ValueError, OSError, RuntimeError) as err:
            raise UsageError(f"{cfg_path or weights}: {first_line(err)}") from err
        if model.extra_inputs:
            raise UsageError(f"{cfg_path}: the model needs {model.extra_inputs} besides the image; predict cannot "
                             f"supply it")
        models.append(model)
    return models


def inputs_of(path):
    if os.path.isdir(path):
        files = images_in(path)
    elif os.path.isfile(path):
        files = [path]
    else:
        raise UsageError(f"{path}: no such file or folder")
    if not files:
        raise UsageError(f"{path}: no images found")
    return files


def output_names(files, output):
    """{input path: output path}: <name>.png, or <name>_<ext>.png for inputs that share a name (a.png and
    a.jpg); UsageError when an output would replace one of the inputs."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    shared = {s for s in stems if stems.count(s) > 1}
    names = {}
    for path, stem in zip(files, stems):
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        names[path] = os.path.join(output, f"{stem}_{ext}.png" if stem in shared else f"{stem}.png")
    inputs = {os.path.realpath(f) for f in files}
    clash = sorted(p for p in names.values() if os.path.realpath(p) in inputs)
    if clash:
        raise UsageError(f"{clash[0]}: an output would replace this input; write to another folder")
    return names


def parse_model_specs(args):
    if args.models:
        return [(cfg_path, weights or None) for cfg_path, _, weights in (m.partition(":") for m in args.models)]
    if not args.config and not args.weights:
        raise UsageError("give --weights W (its stored config), -c CONFIG [--weights W], or --models CONFIG:WEIGHTS ...")
    return [(args.config, args.weights)]


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-predict")
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("output", help="output folder (created); outputs keep the input names, as .png")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the config, e.g. model.region_strategy=auto")
    parser.add_argument("-c", "--config", help="YAML config (default: the config stored in --weights)")
    parser.add_argument("--weights")
    parser.add_argument("--models", nargs="+", help="a cascade of CONFIG:WEIGHTS, applied in order")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (multiple of 4)")
    parser.add_argument("--overlap", type=int, default=48,
                        help="tile overlap in pixels (multiple of 4; 48 keeps HDM and AECR-Net's tiles equal to the whole "
                             "image to float rounding, measured)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="autocast: bf16 on CPU, fp16 on CUDA")
    parser.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (flips and rotations; 8x the time)")
    parser.add_argument("--save-maps", action="store_true",
                        help="also write the first model's dark channel, transmission and region masks (colour-mapped)")
    args = parser.parse(argv)
    if args.tile is not None and (args.tile % 4 or args.overlap % 4 or not 0 <= args.overlap < args.tile):
        raise UsageError(f"--tile {args.tile} --overlap {args.overlap}: multiples of 4 with 0 <= overlap < tile")
    files = inputs_of(args.input)
    names = output_names(files, args.output)
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    models = load_models(parse_model_specs(args), device, args.overrides)
    try:
        ensure_writable(args.output)
    except OSError as err:
        raise UsageError(first_line(err)) from err
    amp = amp_mode("auto" if args.amp else "off", device)
    failures = 0
    start = time.time()
    for path in files:
        try:
            if not is_image(path):
                raise OSError(f"{path}: not an image file name")
            lq = read_image_tensor(path).unsqueeze(0).to(device)  # uint8 until the tile that needs it
            with torch.inference_mode(), autocast(device, amp):
                x = lq
                for model in models:
                    x = restore(model, x, tile=args.tile, overlap=args.overlap, ensemble=args.ensemble).float()
                if args.save_maps and hasattr(models[0], "maps"):
                    lq = lq.float() / 255 if lq.dtype == torch.uint8 else lq
                    for key, img in colour_maps(models[0].maps(lq), lq.shape[-2:]).items():
                        write_image(f"{os.path.splitext(names[path])[0]}_{key}.png", img)
            write_image(names[path], x[0].permute(1, 2, 0))
        except (OSError, ValueError) as err:
            failures += 1
            print(f"error: {first_line(err)}", file=sys.stderr)
        except RuntimeError as err:  # allocation failures; anything else is a bug and keeps its traceback
            if "memory" not in str(err).lower() and "alloc" not in str(err).lower():
                raise
            failures += 1
            print(f"error: {path}: too large to restore in memory on {device} ({str(err).splitlines()[0][:80]}); "
                  f"use --tile 512", file=sys.stderr)
    done = len(files) - failures
    print(f"restored {done} of {len(files)} image(s) into {args.output} in {time.time() - start:.1f} s")
    return 1 if failures else 0


def run():
    console(main)


if __name__ == "__main__":
    run()
