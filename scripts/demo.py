"""The embedded demo: synthesise degraded/clean pairs from scikit-image photos, train a reduced HDM on
them, and test it on an unseen photo against the degraded input.

    python scripts/demo.py                      # dehazing (the default)
    python scripts/demo.py --task rain          # deraining; --task lowlight; --task all
    python scripts/demo.py --task haze train.iterations=400

A finished demo run (its final checkpoint exists) is not trained again; delete runs/hdm_demo* to retrain.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from hdm.checkpoint import load_checkpoint  # noqa: E402
from hdm.config import load_config  # noqa: E402
from hdm.data import build_dataset  # noqa: E402
from hdm.data.demo import make_demo  # noqa: E402
from hdm.engine import evaluate, fit, resolve_device, run_dir_of, summarize  # noqa: E402
from hdm.metrics import get_metric  # noqa: E402
from hdm.models import build_model, count_parameters  # noqa: E402

CONFIGS = {
    "haze": "configs/demo/hdm_demo.yaml",
    "rain": "configs/demo/hdm_demo_rain.yaml",
    "lowlight": "configs/demo/hdm_demo_lowlight.yaml",
}
INPUT_NAMES = {"haze": "hazy input", "rain": "rainy input", "lowlight": "low-light input"}


def run_task(task, overrides):
    cfg = load_config(CONFIGS[task], overrides)
    t0 = time.time()
    make_demo(task, os.path.join("datasets", "demo", task))
    t_data = time.time() - t0

    final = os.path.join(run_dir_of(cfg), "checkpoints", f"iter_{cfg['train']['iterations']}.pth")
    t0 = time.time()
    if os.path.isfile(final):
        print(f"found a finished demo run ({final}); delete {run_dir_of(cfg)} to train again")
    else:
        fit(cfg, resume="auto")
    t_train = time.time() - t0

    device = resolve_device(cfg["device"])
    model = build_model(cfg["model"])
    model.load_state_dict(load_checkpoint(final)["model"])
    model.to(device)
    out_dir = os.path.join(run_dir_of(cfg), "test")
    preset = cfg["eval"]["preset"]
    t0 = time.time()
    with torch.inference_mode():
        rows = evaluate(model, build_dataset(cfg["data"]["val"]), get_metric(preset, **cfg["eval"]["options"]), device,
                        save_dir=os.path.join(out_dir, "images"))
    t_test = time.time() - t0
    mean = summarize(rows)

    print(f"\nDemo ({task}): {', '.join(r['name'] for r in rows)} (unseen photo, synthetic degradation); "
          f"metric preset {preset}")
    print("| method | params | PSNR (dB) | SSIM |")
    print("|---|---|---|---|")
    print(f"| {INPUT_NAMES[task]} | - | {mean['input_psnr']:.2f} | {mean['input_ssim']:.4f} |")
    print(f"| HDM (dim {cfg['model'].get('dim', 64)}, {cfg['train']['iterations']} iterations) | "
          f"{count_parameters(model):,} | {mean['psnr']:.2f} | {mean['ssim']:.4f} |")
    print(f"\nHDM gain over the input: {mean['psnr'] - mean['input_psnr']:+.2f} dB")
    print(f"wall time: data {t_data:.1f} s, training {t_train:.1f} s, test {t_test:.1f} s; "
          f"restored images in {os.path.join(out_dir, 'images')}")
    return mean


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="haze", choices=[*CONFIGS, "all"])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    os.chdir(ROOT)  # the demo configs' paths are relative to the repository
    tasks = list(CONFIGS) if args.task == "all" else [args.task]
    return {task: run_task(task, args.overrides) for task in tasks}


if __name__ == "__main__":
    main()
