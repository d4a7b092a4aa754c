"""The embedded demo: synthesise degraded/clean pairs from scikit-image photos, train a reduced HDM on
them, and test it on an unseen photo against the degraded input.

    python scripts/demo.py                      # dehazing (the default)
    python scripts/demo.py --task rain          # deraining; --task lowlight; --task all
    python scripts/demo.py --task haze train.iterations=400

Every config of the tasks asked for (with the overrides) and its data are checked before the first
model trains, as train.py checks one (a bad override fails at once, not after the first model).
A model's result is reused (and the demo says so) only when its run folder recorded it for the same
resolved config and the same code (runs/<name>/demo_result.json); otherwise the model is trained and
tested again, and a run folder that holds another run (another config, e.g. another train.iterations,
or other code) is first moved to runs/<name>.old-<time> (nothing is deleted), so its config.yaml
always describes what ran. An interrupted run of the same config continues.
"""
import json
import os
import time

from hdm.cli import Parser, UsageError, console
from hdm.config import load_config
from hdm.data.demo import make_demo
from hdm.errors import shown
from hdm.evaluation import summarize
from hdm.files import atomic_write
from hdm.identity import name_key
from hdm.models import build_model, count_parameters
from hdm.pipeline import check_train_and_evaluate, train_and_evaluate
from hdm.results import code_digest, config_digest, recorded_result
from hdm.run_folder import config_changes, move_aside, stored_config
from hdm.runtime import run_dir_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {  # task: the models it trains and compares, as configs
    "haze": ["configs/demo/hdm_demo.yaml", "configs/demo/aecrnet_demo.yaml", "configs/demo/dcp_demo.yaml",
             "configs/demo/pfdcp_demo.yaml"],
    "rain": ["configs/demo/hdm_demo_rain.yaml"],
    "lowlight": ["configs/demo/hdm_demo_lowlight.yaml", "configs/demo/hybrid_demo_lowlight.yaml"],
}
INPUT_NAMES = {"haze": "hazy input", "rain": "rainy input", "lowlight": "low-light input"}


def run_task(task, cfgs, t_data):
    """Train (or reuse) and test each config of a task, checked beforehand; print the task's table."""
    results = [(cfg, *train_or_reuse(cfg)) for cfg in cfgs]
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
          f"data synthesis {t_data:.1f} s; restored images in {shown(os.path.join(cfg['work_dir'], '<name>', 'test', 'images'))}")
    return {cfg["name"]: summarize(rows) for cfg, _, rows, _, _ in results}


def train_or_reuse(cfg):
    """(model, rows, training s, test s) of one demo config: the result its run folder recorded for this
    resolved config and this code (said; the model then only counts parameters), else trained (or
    continued) and tested, after moving aside a run folder that holds another run."""
    run_dir = run_dir_of(cfg)
    result_path = os.path.join(run_dir, "demo_result.json")
    record = {"config_digest": config_digest(cfg), "code_digest": code_digest()}
    reused = recorded_result(result_path, record)
    if reused is not None:
        print(f"{cfg['name']}: reusing the result in {shown(run_dir)} (same resolved config and code; "
              f"delete the folder to run it again)")
        return build_model(cfg["model"]), reused["rows"], reused["train_s"], reused["test_s"]
    stored = stored_config(run_dir)
    if os.path.isfile(result_path) or (stored is not None and any(config_changes(stored, cfg))):
        moved = move_aside(run_dir)
        print(f"{cfg['name']}: {shown(run_dir)} holds a run of another config or code; moved to {shown(moved)}")
    model, rows, train_s, test_s = train_and_evaluate(cfg, save_dir=os.path.join(run_dir, "test", "images"))
    with atomic_write(result_path, "w") as f:
        json.dump({**record, "rows": rows, "train_s": train_s, "test_s": test_s}, f, indent=1)
    return model, rows, train_s, test_s


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("--task", default="haze", choices=[*CONFIGS, "all"])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse(argv)
    os.chdir(ROOT)  # the demo configs' paths are relative to the repository
    tasks = list(CONFIGS) if args.task == "all" else [args.task]
    t_data, planned = {}, {}
    for task in tasks:
        t0 = time.time()
        make_demo(task, os.path.join("datasets", "demo", task))
        t_data[task] = time.time() - t0
    for task in tasks:  # every config and its data checked before the first model trains
        planned[task] = [load_config(path, args.overrides) for path in CONFIGS[task]]
        for cfg in planned[task]:
            check_train_and_evaluate(cfg, scores=("psnr", "ssim"))
    folders = [name_key(os.path.abspath(run_dir_of(cfg))) for cfgs in planned.values() for cfg in cfgs]
    if len(set(folders)) < len(folders):
        raise UsageError("the demo's configs would share one run folder (a name=... override?): each needs its own")
    return {task: run_task(task, planned[task], t_data[task]) for task in tasks}


if __name__ == "__main__":
    console(main)
