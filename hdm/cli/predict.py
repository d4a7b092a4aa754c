"""Restore images without targets: a file or a folder in, a folder out.

    hdm-predict INPUT OUTPUT_DIR --weights runs/hdm_its/checkpoints/iter_100000.pth   # the config stored in it
    # doc-test: skip (the released HDM's size; README.md's -c CONFIG example runs)
    hdm-predict INPUT OUTPUT_DIR -c configs/dehaze/hdm_its.yaml --weights W.pth
    hdm-predict INPUT OUTPUT_DIR --weights W.pth model.region_strategy=masked_sum       # dotted overrides
    hdm-predict INPUT OUTPUT_DIR --models derain.yaml:derain.pth dehaze.yaml:dehaze.pth   # a cascade
    # doc-test: skip (CUDA)
    hdm-predict INPUT OUTPUT_DIR -c CONFIG --weights W --tile 512 --overlap 32 --amp --device cuda
    hdm-predict INPUT OUTPUT_DIR -c configs/baselines/dcp_sots.yaml --save-maps   # no weights: DCP
    # doc-test: skip (needs an exported file; tests/test_export.py runs it)
    hdm-predict INPUT OUTPUT_DIR --onnx hdm_its.onnx      # an exported file, ONNX Runtime only (no torch)

Any image size works (the models pad and crop); --tile splits large images into overlapping tiles.
With --models, each model restores the previous one's output (HDM paper Fig. 6: derain, then dehaze).
Outputs are <input name>.png (<name>_<ext>.png when two inputs share a name, a.png and a.jpg or
A.PNG; maps <name>_<map>.png), unique on case-insensitive filesystems too; an output never replaces an
input, and one that exists is replaced only with --overwrite. Unreadable inputs, and images whose
outputs are NaN or infinite, are skipped with one error line each, and the exit code is then 1;
outputs are written atomically, so no partial file is left behind.
"""
import contextlib
import os
import sys
import time

import numpy as np

from hdm.cli import Parser, UsageError, console, first_line, inputs_of, non_negative_int, positive_int
from hdm.deploy.description import sidecar_path
from hdm.errors import ConfigError, NonFiniteOutput, shown
from hdm.files import made_folder
from hdm.identity import contains
from hdm.image_io import ensure_writable, image_header, read_rgb, write_image
from hdm.locks import FolderLock
from hdm.outputs import check_apart, check_writable_outputs, model_inputs, plan_outputs

# the maps --save-maps may write (HDM: all three; DCP, PF-DCP: the first two), named <output>_<map>.png
MAP_NAMES = ("dark_channel", "transmission", "regions")
MAX_THREADS = 1024  # ONNX Runtime's thread pool takes an int; no machine has more cores
TOO_LARGE = "the torch route restores large images in tiles: --tile 512"
DEFAULT_OVERLAP = 48  # pixels: HDM's and AECR-Net's tiles equal the whole image to float rounding (measured)


def parse_model_specs(args):
    if args.models:
        return [(cfg_path, weights or None) for cfg_path, _, weights in (m.partition(":") for m in args.models)]
    if not args.config and not args.weights:
        raise UsageError("give --weights W (its stored config), -c CONFIG [--weights W], or --models CONFIG:WEIGHTS ...")
    return [(args.config, args.weights)]


def check_applicable(args):
    """UsageError for an option given where it does nothing (an option is never silently ignored): -c and
    --weights with --models (which names the models), --overlap without --tile, --threads without --onnx
    (what --onnx does not take: predict_onnx)."""
    rules = [("-c", args.config, not args.models, "without --models"),
             ("--weights", args.weights, not args.models, "without --models"),
             ("--overlap", args.overlap is not None, args.tile is not None, "with --tile"),
             ("--threads", args.threads is not None, bool(args.onnx), "with --onnx")]
    for flag, given, applies, where in rules:
        if given and not applies:
            raise UsageError(f"{flag}: applies only {where}; it would be ignored here")


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-predict")
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("output", help="output folder (created); outputs keep the input names, as .png")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the config, e.g. model.region_strategy=auto")
    parser.add_argument("-c", "--config", help="YAML config (default: the config stored in --weights)")
    parser.add_argument("--weights")
    parser.add_argument("--models", nargs="+", help="a cascade of CONFIG:WEIGHTS, applied in order")
    parser.add_argument("--tile", type=positive_int, default=None, help="tile side in pixels (multiple of 4)")
    parser.add_argument("--overlap", type=non_negative_int, default=None,
                        help="with --tile: tile overlap in pixels (multiple of 4; default 48, which keeps HDM and AECR-Net's "
                             "tiles equal to the whole image to float rounding, measured)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="autocast: bf16 on CPU, fp16 on CUDA")
    parser.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (flips and rotations; 8x the time)")
    parser.add_argument("--save-maps", action="store_true",
                        help="also write the first model's dark channel, transmission and region masks (colour-mapped)")
    parser.add_argument("--onnx", help="an exported .onnx file (hdm-export), run by ONNX Runtime without torch")
    parser.add_argument("--threads", type=int, default=None, help="with --onnx: ONNX Runtime's threads (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist (never an input)")
    args = parser.parse(argv)
    check_applicable(args)
    args.overlap = DEFAULT_OVERLAP if args.overlap is None else args.overlap
    if args.tile is not None and (args.tile % 4 or args.overlap % 4 or not 0 <= args.overlap < args.tile):
        raise UsageError(f"--tile {args.tile} --overlap {args.overlap}: multiples of 4 with 0 <= overlap < tile")
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise UsageError(f"--threads {args.threads}: expected 1 to {MAX_THREADS}")
    files = inputs_of(args.input)
    if os.path.isdir(args.input):  # the outputs apart from the folder read (a later run would read them as inputs)
        check_apart(args.output, [args.input], "OUTPUT_DIR")
    else:  # one file: never restored into the folder that holds it; what is wrong with it found before work
        if contains(args.output, args.input):
            raise UsageError(f"{shown(args.output)}: holds the input {shown(args.input)}; the outputs would lie among "
                             f"the inputs; choose another OUTPUT_DIR")
        try:
            image_header(args.input)
        except OSError as err:
            raise UsageError(first_line(err)) from err
    if args.device != "auto" and not args.onnx:
        from hdm.config import check_device  # torch: not on the ONNX route

        try:
            check_device(args.device)
        except ConfigError as err:
            raise UsageError(f"--device: {err}") from err
    plan, notes = plan_outputs(files, args.output, MAP_NAMES if args.save_maps else ())
    check_writable_outputs(all_outputs(plan), files + model_files(args), args.overwrite)  # before any model loads
    for note in notes:
        print(note)
    if args.onnx:
        return predict_onnx(args, files, plan)
    return predict_torch(args, files, plan)


def model_files(args):
    """The files that make the model (configs and their bases, weights, an ONNX file and its description)."""
    if args.onnx:
        return [args.onnx, sidecar_path(args.onnx)]
    return model_inputs(parse_model_specs(args))


def all_outputs(plan):
    return [p for outputs in plan.values() for p in outputs.values()]


@contextlib.contextmanager
def claimed_output(args, files, plan):
    """The output folder created, writable and claimed (hdm.locks.FolderLock) while the images are
    restored; the outputs checked again under the claim (another process may have written them since). The
    folders it created are removed again when the block fails before writing into them (made_folder)."""
    with made_folder(args.output):
        try:
            ensure_writable(args.output)
        except OSError as err:
            raise UsageError(first_line(err)) from err
        with FolderLock(args.output, "wait for it or write to another folder"):
            check_writable_outputs(all_outputs(plan), files + model_files(args), args.overwrite)
            yield


def restore_all(files, plan, output, restore_one, weights):
    """restore_one(path) -> {"": RGB (H, W, 3) in [0, 1], map name: map image, ...} for every file, written
    to plan[path]; a file that fails (unreadable, too large, NaN or infinite outputs of `weights`, a write
    that fails) is one error line, leaves none of its outputs, and the others go on (exit code 1 then)."""
    failures = 0
    start = time.time()
    for path in files:
        written = []
        try:
            images = restore_one(path)
            bad = count_nonfinite(images[""])
            if bad:
                size = images[""].numel() if hasattr(images[""], "numel") else images[""].size
                raise NonFiniteOutput(f"{bad} of {size} output values are NaN or infinite")
            for key, img in images.items():
                write_image(plan[path][key], img)
                written.append(plan[path][key])
        except (OSError, ValueError, MemoryError, NonFiniteOutput) as err:
            failures += 1
            for done in written:  # an image that failed leaves none of its outputs
                with contextlib.suppress(OSError):
                    os.remove(done)
            message = first_line(err) if not isinstance(err, MemoryError) else \
                f"not enough memory to restore it whole ({TOO_LARGE})"
            if isinstance(err, NonFiniteOutput):
                message += f" with {weights}: nothing written (the weights may be broken)"
            earlier = [p for p in plan[path].values() if os.path.lexists(p)]  # --overwrite: never this call's
            if earlier:
                message += f"; {shown(earlier[0])} is an earlier call's output, kept as it was"
            name = shown(path)
            print(f"error: {message if name in message else f'{name}: {message}'}", file=sys.stderr)
    print(f"restored {len(files) - failures} of {len(files)} image(s) into {shown(output)} in {time.time() - start:.1f} s")
    return 1 if failures else 0


def count_nonfinite(img):
    """The number of NaN or infinite values of an image (array or tensor)."""
    if hasattr(img, "detach"):  # a torch tensor, without importing torch here
        img = img.detach().float().cpu().numpy()
    return int(img.size - np.count_nonzero(np.isfinite(img)))


def predict_onnx(args, files, plan):
    """The ONNX route: NumPy, OpenCV and ONNX Runtime only (torch is never imported)."""
    unsupported = [flag for flag, value in (("-c", args.config), ("--weights", args.weights), ("--models", args.models),
                                            ("--tile", args.tile), ("--ensemble", args.ensemble), ("--amp", args.amp),
                                            ("--save-maps", args.save_maps), ("overrides", args.overrides),
                                            ("--device", args.device != "auto")) if value]
    if unsupported:
        raise UsageError(f"--onnx runs the exported file as it is: {', '.join(unsupported)} do not apply to it")
    from hdm.deploy.onnx_model import OnnxModel

    try:
        model = OnnxModel(args.onnx, threads=args.threads)
    except ValueError as err:
        raise UsageError(f"--onnx: {first_line(err)}") from err
    with claimed_output(args, files, plan):
        return restore_all(files, plan, args.output, lambda path: {"": model(read_rgb(path))}, shown(args.onnx))


def predict_torch(args, files, plan):
    import torch

    from hdm.cli.loading import load_models
    from hdm.data.io import read_image_tensor
    from hdm.device import amp_mode, autocast, keep_freed_memory, resolve_device
    from hdm.inference import colour_maps, restore

    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()
    specs = parse_model_specs(args)
    models = load_models(specs, device, args.overrides)
    if args.save_maps and not hasattr(models[0], "maps"):
        raise UsageError(f"--save-maps: {type(models[0]).__name__} gives no maps (HDM, DCP and PF-DCP do)")
    amp = amp_mode("auto" if args.amp else "off", device)

    def restore_one(path):
        lq = read_image_tensor(path).unsqueeze(0).to(device)  # uint8 until the tile that needs it
        try:
            with torch.inference_mode(), autocast(device, amp):
                x = lq
                for model in models:
                    x = restore(model, x, tile=args.tile, overlap=args.overlap, ensemble=args.ensemble).float()
                images = {"": x[0].permute(1, 2, 0)}
                if args.save_maps:
                    lq = lq.float() / 255 if lq.dtype == torch.uint8 else lq
                    images.update(colour_maps(models[0].maps(lq), lq.shape[-2:]))
        except RuntimeError as err:  # allocation failures; anything else is a bug and keeps its traceback
            if "memory" not in str(err).lower() and "alloc" not in str(err).lower():
                raise
            raise OSError(f"{shown(path)}: too large to restore in memory on {device} ({str(err).splitlines()[0][:80]}); "
                          f"use --tile 512") from err
        return images

    weights = " -> ".join(shown(w or c) for c, w in specs)
    with claimed_output(args, files, plan):
        return restore_all(files, plan, args.output, restore_one, weights)


def run():
    console(main)


if __name__ == "__main__":
    run()
