"""Export a model to ONNX, checked by ONNX Runtime against PyTorch before anything is written.

    # doc-test: skip (hdm-export's ONNX Runtime check takes minutes at the released models' size; tests/test_export.py runs it)
    hdm-export hdm_its.onnx --weights runs/hdm_its/checkpoints/best.pth     # the config stored in it
    # doc-test: skip (hdm-export's ONNX Runtime check takes minutes at the released models' size)
    hdm-export hdm_its.onnx --weights W.pth -c configs/dehaze/hdm_its.yaml   # or a config file
    # doc-test: skip (tests/test_export.py exports DCP)
    hdm-export dcp.onnx -c configs/baselines/dcp_sots.yaml                   # DCP, PF-DCP: no weights
    # doc-test: skip (tests/test_quantize.py quantises small models)
    hdm-export hdm_its_int8.onnx --weights W.pth --quantize calib/ --min-psnr 40   # INT8, calibrated on calib/

The file takes RGB float32 (1, 3, H, W) in [0, 1] of any size and returns RGB in [0, 1]; an HDM file
with DCP regions also takes the region masks (see docs/deploy.md). Beside it, <name>.json describes
the model, its config, weights, iteration, metric preset, the input contract and the check's figures;
the file itself holds a copy of the contract. With --quantize, the checked graph is written in its INT8
form (ONNX Runtime's static quantisation, calibrated on the images given), and the .json records its PSNR
against the float32 graph on each of them; below --min-psnr nothing is written (docs/deploy.md).
hdm-predict --onnx FILE runs it with ONNX Runtime alone, after verifying it against the .json. An
existing .onnx or .json is replaced only with --overwrite, and never when it is an input (the config,
its base, the weights), however its path is written.
SIGTERM and SIGHUP stop it as they stop every tool (hdm.cli.console): its temporary files are removed (a
later write into the folder removes those of a process killed with SIGKILL).
"""
import os

from hdm.cli import Parser, UsageError, console, first_line, inputs_of, positive_float
from hdm.deploy.quantize import MIN_PSNR
from hdm.errors import shown
from hdm.image_io import ensure_writable


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-export")
    parser.add_argument("output", help="the .onnx file to write (its .json is written beside it)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the config, e.g. model.num_regions=5")
    parser.add_argument("-c", "--config", help="YAML config (default: the config stored in --weights)")
    parser.add_argument("--weights", help="a checkpoint (train.py's, or converted release weights)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file and its .json (never an input)")
    parser.add_argument("--quantize", nargs="+", metavar="IMAGE",
                        help="write the INT8 form, calibrated on these images (files or folders of images)")
    parser.add_argument("--min-psnr", type=positive_float, metavar="DB",
                        help=f"with --quantize: refuse the INT8 form when its output on a calibration image is below "
                             f"DB dB PSNR against the float32 graph's (default {MIN_PSNR:g})")
    args = parser.parse(argv)
    if args.min_psnr is not None and not args.quantize:
        raise UsageError("--min-psnr applies to --quantize only")
    if not args.output.endswith(".onnx"):
        raise UsageError(f"{shown(args.output)}: the output must be a .onnx file")
    if not args.config and not args.weights:
        raise UsageError("give --weights W (its stored config) or -c CONFIG [--weights W]")
    from hdm.deploy.description import sidecar_path
    from hdm.outputs import check_writable_outputs, model_inputs

    calibration_files = [name for path in args.quantize or () for name in inputs_of(path)]
    check_writable_outputs([args.output, sidecar_path(args.output)],
                           model_inputs([(args.config, args.weights)]) + calibration_files, args.overwrite)
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise UsageError(f"{shown(folder)}: no such folder")
    try:
        ensure_writable(folder)
    except OSError as err:
        raise UsageError(first_line(err)) from err

    import torch

    from hdm.checkpoint import load_checkpoint, selection_record
    from hdm.cli.loading import load_one
    from hdm.export import export

    calibration = None
    if args.quantize:  # every image read before the export's minutes of work
        calibration = (calibration_images(calibration_files), MIN_PSNR if args.min_psnr is None else args.min_psnr)
    model, cfg = load_one(args.config, args.weights, torch.device("cpu"), args.overrides, fmt="contiguous")
    if calibration and not any(True for _ in model.parameters()):
        raise UsageError(f"{cfg['model']['type']} has no weights to quantize (--quantize is for the networks)")
    if args.weights:
        record = selection_record(args.weights, load_checkpoint(args.weights), None)
    else:
        record = {"weights": None, "iteration": None, "chosen": "no weights (a parameter-free model)"}
    try:
        meta = export(model, args.output, cfg, record, calibration=calibration)
    except ValueError as err:
        raise UsageError(f"{shown(args.config or args.weights)}: {first_line(err)}") from err
    sizes = ", ".join(f"{h}x{w}" for h, w in meta["check"]["sizes"])
    masks = "; masks: the second input, computed in NumPy by hdm.deploy.dcp_masks" if meta["masks"] else ""
    print(f"exported {meta['model']} ({record['chosen']}) to {shown(args.output)}: ONNX Runtime within "
          f"{max(meta['check']['max_abs_diff']):.1e} of PyTorch on {sizes} (H x W){masks}")
    if calibration:
        worst = meta["quantization"]["psnr_vs_float32_db"]["min"]
        cost = "equal to the float32 graph's" if worst is None else f"at least {worst:.1f} dB PSNR from the float32 graph's"
        count = len(calibration[0])
        print(f"  as INT8 (calibrated on {count} image{'s' * (count != 1)}): its output {cost} on each of them")
    return 0


def calibration_images(files):
    """[(path, RGB (H, W, 3))] of the image `files`, each read as every tool reads images (hdm.image_io's
    read_rgb: 8-bit images stay uint8 until they run); UsageError naming the first that cannot be read."""
    from hdm.image_io import read_rgb

    images = []
    for name in files:
        try:
            img = read_rgb(name)
        except (OSError, ValueError) as err:
            raise UsageError(first_line(err) if shown(name) in str(err) else f"{shown(name)}: {first_line(err)}") from err
        images.append((name, img))
    return images


def run():
    console(main)


if __name__ == "__main__":
    run()
