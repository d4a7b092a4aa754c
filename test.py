"""Evaluate weights on the config's validation/test set: per-image CSV, Markdown summary, optional images.

    python test.py -c configs/demo/hdm_demo.yaml --weights runs/hdm_demo/checkpoints/iter_1200.pth [--save-images]
"""
import argparse
import csv
import os

import torch

from hdm.checkpoint import load_checkpoint
from hdm.config import ConfigError, load_config
from hdm.data import build_dataset
from hdm.engine import evaluate, resolve_device, run_dir_of, summarize
from hdm.metrics import get_metric
from hdm.models import build_model


def markdown_table(rows, preset):
    lines = [f"| method | PSNR (dB) | SSIM | images | metric preset |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {psnr:.2f} | {ssim:.4f} | {n} | {preset} |" for name, psnr, ssim, n in rows]
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.val.lq_dir=...")
    parser.add_argument("--weights", required=True, help="checkpoint (.pth) written by train.py or convert_official.py")
    parser.add_argument("--out", default=None, help="results folder (default: <run folder>/test)")
    parser.add_argument("--save-images", action="store_true", help="save restored images as PNG")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        parser.exit(2, f"config error: {err}\n")
    if cfg["data"]["val"] is None:
        parser.exit(2, "config error: data.val: a test dataset is required\n")

    device = resolve_device(cfg["device"])
    model = build_model(cfg["model"])
    ckpt = load_checkpoint(args.weights)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        parser.exit(2, f"{args.weights}: weights do not fit model {cfg['model']} ({str(err).splitlines()[0]})\n")
    model.to(device)
    dataset = build_dataset(cfg["data"]["val"])
    out_dir = args.out or os.path.join(run_dir_of(cfg), "test")
    os.makedirs(out_dir, exist_ok=True)
    preset = cfg["eval"]["preset"]
    save_images = args.save_images or cfg["eval"]["save_images"]
    rows = evaluate(model, dataset, get_metric(preset), device,
                    save_dir=os.path.join(out_dir, "images") if save_images else None)
    mean = summarize(rows)
    write_csv(os.path.join(out_dir, "per_image.csv"), rows)
    table = markdown_table([("input (degraded)", mean["input_psnr"], mean["input_ssim"], len(rows)),
                            (f"{cfg['model']['type']} ({os.path.basename(args.weights)})", mean["psnr"],
                             mean["ssim"], len(rows))], preset)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(table)
    print(table, end="")
    print(f"per-image results: {os.path.join(out_dir, 'per_image.csv')}")
    return mean


if __name__ == "__main__":
    with torch.inference_mode():
        main()
