"""The embedded demo: synthesise degraded/clean pairs from scikit-image photos, train a reduced HDM on
them, and test it on an unseen photo against the degraded input.

    python scripts/demo.py                      # dehazing (the default)
    python scripts/demo.py --task rain          # deraining; --task lowlight; --task all
    python scripts/demo.py --task haze train.iterations=400

A finished demo run (its final checkpoint exists) is not trained again; delete runs/<name> to retrain.
"""
import os
import time

from hdm.cli import Parser, console
from hdm.config import load_config
from hdm.data.demo import make_demo
from hdm.engine import train_and_evaluate
from hdm.evaluation import summarize
from hdm.models import count_parameters
from hdm.runtime import run_dir_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {  # task: the models it trains and compares, as configs
    "haze": ["configs/demo/hdm_demo.yaml", "configs/demo/aecrnet_demo.yaml", "configs/demo/dcp_demo.yaml",
             "configs/demo/pfdcp_demo.yaml"],
    "rain": ["configs/demo/hdm_demo_rain.yaml"],
    "lowlight": ["configs/demo/hdm_demo_lowlight.yaml", "configs/demo/hybrid_demo_lowlight.yaml"],
}
INPUT_NAMES = {"haze": "hazy input", "rain": "rainy input", "lowlight": "low-light input"}


def run_task(task, overrides):
    t0 = time.time()
    make_demo(task, os.path.join("datasets", "demo", task))
    t_data = time.time() - t0
    results = []
    for path in CONFIGS[task]:  # a finished run is not trained again: delete runs/<name> to retrain
        cfg = load_config(path, overrides)
        results.append((cfg, *train_and_evaluate(cfg, save_dir=os.path.join(run_dir_of(cfg), "test", "images"))))
    cfg, _, rows, _, _ = results[0]
    mean = summarize(rows)
    print(f"\nDemo ({task}): {', '.join(r['name'] for r in rows)} (unseen photo, synthetic degradation); "
          f"metric preset {cfg['eval']['preset']}")
    print("| method | params | PSNR (dB) | SSIM | training time |")
    print("|---|---|---|---|---|")
    print(f"| {INPUT_NAMES[task]} | - | {mean['input_psnr']:.2f} | {mean['input_ssim']:.4f} | - |")
    for cfg, model, rows, t_train, _ in results:
        m = summarize(rows)
        size = ", ".join(f"{k} {cfg['model'][k]}" for k in ("dim", "ngf", "width", "weight") if k in cfg["model"])
        budget = f"{cfg['train']['iterations']} iterations" if count_parameters(model) else "no training"
        print(f"| {cfg['model']['type']} ({', '.join(filter(None, [size, budget]))}) | "
              f"{count_parameters(model):,} | {m['psnr']:.2f} | {m['ssim']:.4f} | {t_train:.0f} s |")
    print(f"\n{results[0][0]['model']['type']} gain over the input: {mean['psnr'] - mean['input_psnr']:+.2f} dB; "
          f"data synthesis {t_data:.1f} s; restored images in runs/<name>/test/images")
    return {cfg["name"]: summarize(rows) for cfg, _, rows, _, _ in results}


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("--task", default="haze", choices=[*CONFIGS, "all"])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse(argv)
    os.chdir(ROOT)  # the demo configs' paths are relative to the repository
    tasks = list(CONFIGS) if args.task == "all" else [args.task]
    return {task: run_task(task, args.overrides) for task in tasks}


if __name__ == "__main__":
    console(main)
