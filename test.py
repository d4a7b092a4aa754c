"""Evaluate weights on the config's test set (data.val): per-image CSV, Markdown summary, provenance,
a comparison grid, and the restored images when asked.

    python test.py -c configs/demo/hdm_demo.yaml --weights runs/hdm_demo/checkpoints/iter_600.pth [--save-images]
    python test.py -c CONFIG --weights W --preset matlab_y_uint8        # score as the deraining papers do
    python test.py -c CONFIG --weights W data.val.type=ImageFolder data.val.root=DICM --preset niqe
"""
import argparse
import os

import torch

from hdm.config import ConfigError, check_data_paths, load_config
from hdm.data import build_dataset
from hdm.data.io import ensure_writable, write_image
from hdm.engine import evaluate, resolve_device, run_dir_of, summarize
from hdm.metrics import NO_REFERENCE, get_metric
from hdm.inference import autocast, load_model
from hdm.results import comparison_grid, provenance, write_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.val.root=...")
    parser.add_argument("--weights", default=None,
                        help="checkpoint (.pth) written by train.py or convert_official.py (none for DCP / PF-DCP)")
    parser.add_argument("--preset", default=None, help="metric preset (default: the config's eval.preset)")
    parser.add_argument("--out", default=None, help="results folder (default: <run folder>/test)")
    parser.add_argument("--save-images", action="store_true", help="save restored images as PNG")
    parser.add_argument("--amp", action="store_true", help="inference under autocast (bf16 on CPU, fp16 on CUDA)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.preset:  # a preset's options belong to it: another preset starts without them
        overrides += [f"eval.preset={args.preset}", "eval.options={}"]
    try:
        cfg = load_config(args.config, overrides)
        check_data_paths(cfg)
    except ConfigError as err:
        parser.exit(2, f"config error: {err}\n")
    if cfg["data"]["val"] is None:
        parser.exit(2, "config error: data.val: a test dataset is required\n")

    device = resolve_device(cfg["device"])
    try:
        model = load_model(cfg["model"], args.weights, device)
    except ValueError as err:
        parser.exit(2, f"{err}\n")
    dataset = build_dataset(cfg["data"]["val"])
    preset, options = cfg["eval"]["preset"], cfg["eval"]["options"]
    if "gt" not in dataset[0] and preset not in NO_REFERENCE:
        parser.exit(2, f"{cfg['data']['val']['type']} has no targets: use a no-reference preset ({', '.join(NO_REFERENCE)})\n")
    out_dir = args.out or os.path.join(run_dir_of(cfg), "test")
    try:
        ensure_writable(out_dir)
    except OSError as err:
        parser.exit(2, f"error: {err}\n")
    save_images = args.save_images or cfg["eval"]["save_images"]
    with torch.inference_mode(), autocast(device, "auto" if args.amp else "off"):
        rows, examples = evaluate(model, dataset, get_metric(preset, **options), device,
                                  save_dir=os.path.join(out_dir, "images") if save_images else None,
                                  num_examples=cfg["eval"]["grid_images"])
    if examples:
        triplets = [[t.permute(1, 2, 0).numpy() for t in triplet if t is not None] for triplet in examples]
        write_image(os.path.join(out_dir, "comparison.png"), comparison_grid(triplets))
    meta = {**provenance(preset, options), "weights": args.weights, "config": cfg, "images": len(rows)}
    label = cfg["model"]["type"] + (f" ({os.path.basename(args.weights)})" if args.weights else "")
    text = write_results(out_dir, rows, label, meta)
    print(text, end="")
    print(f"results: {out_dir} (per_image.csv, summary.md, meta.json, comparison.png)")
    return summarize(rows)


if __name__ == "__main__":
    main()
