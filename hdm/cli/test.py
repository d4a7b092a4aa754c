"""Evaluate weights on the config's test set (data.test, or data.val when there is none): per-image
CSV, Markdown summary, provenance (which checkpoint, how it was chosen, which dataset version), a
comparison grid, and the restored images when asked.

    # doc-test: skip (README.md's copy runs, after the training it tests)
    python test.py -c configs/demo/hdm_demo.yaml --weights runs/hdm_demo/checkpoints/iter_600.pth [--save-images]
    python test.py -c CONFIG --weights W --preset matlab_y_uint8        # score as the deraining papers do
    python test.py -c CONFIG --weights W --preset ffa_rgb matlab_y_uint8 ciede2000   # several, in one pass
    # doc-test: skip (needs RESIDE SOTS-outdoor)
    python test.py -c CONFIG --weights W data.test.root=datasets/RESIDE/SOTS/outdoor
    python test.py -c CONFIG --weights W data.test.type=ImageFolder data.test.root=DICM --preset niqe

Results go by default to <run folder>/test/<weights>_<test set>/ when the weights are a run's (in its
checkpoints/ folder, with its config.yaml beside it), else to <work_dir>/results/<name>/<weights>_<test
set>/ (work_dir and name of the config; released or converted weights, and none for DCP and PF-DCP), a
new _2, _3, ... folder when that one holds results; an --out that holds results is refused unless
--overwrite, which moves them aside. An image whose output is NaN or infinite is a failure (exit 1,
nothing written), never a score.
"""
import os
import shutil
import sys

import torch

from hdm.checkpoint import load_checkpoint, selection_record
from hdm.cli import Parser, UsageError, console, first_line
from hdm.cli.loading import load_weights
from hdm.config import ConfigError, check_data_paths, load_config
from hdm.data.prepare import check_scored, data_folders, describe, read_checked, target_digests
from hdm.device import amp_mode, autocast, keep_freed_memory, resolve_device
from hdm.errors import NonFiniteOutput, shown
from hdm.evaluation import evaluate, summarize, test_split
from hdm.image_io import write_image
from hdm.inference import SelfEnsemble
from hdm.metrics import get_metrics
from hdm.outputs import claimed_results, model_inputs, results_line
from hdm.results import caption, comparison_grid, provenance, write_results


def set_name(info):
    """A folder-name label of a test set: its benchmark, else its folder (and held-out part)."""
    root = info["root"] if isinstance(info["root"], str) else info["root"][0]
    name = info["benchmark"] or "_".join(os.path.normpath(os.path.abspath(root)).split(os.sep)[-2:])
    return name + (f"_{info['take']}{info['holdout']}" if info["holdout"] else "")


def default_out(cfg, weights, info):
    """<run>/test/<weights stem>_<set> when the weights are a run's (in its checkpoints/ folder, with the
    run's config.yaml beside it); else <work_dir>/results/<name>/<weights stem>_<set>, outside any run
    folder (a run's folder holds only what was made of its own weights)."""
    parent = os.path.dirname(os.path.abspath(weights)) if weights else None
    in_run = parent and os.path.basename(parent) == "checkpoints" and \
        os.path.isfile(os.path.join(os.path.dirname(parent), "config.yaml"))
    folder = os.path.join(os.path.dirname(parent), "test") if in_run else \
        os.path.join(cfg["work_dir"], "results", cfg["name"])
    stem = os.path.splitext(os.path.basename(weights))[0] if weights else "no_weights"
    return os.path.join(folder, f"{stem}_{set_name(info)}")


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-test")
    parser.add_config("data.test.root=...")
    parser.add_argument("--weights", default=None,
                        help="checkpoint (.pth) written by train.py or convert_official.py (none for DCP / PF-DCP)")
    parser.add_argument("--preset", nargs="+", default=None,
                        help="metric preset(s), scored in one pass (default: the config's eval.preset)")
    parser.add_argument("--out", default=None, help="results folder (default: <run folder>/test/<weights>_<set>, or "
                                                    "a new _2, _3, ... when that one holds results)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may hold earlier results: they are moved to <out>.old-<time> (nothing is deleted)")
    parser.add_argument("--save-images", action="store_true", help="save restored images as PNG")
    parser.add_argument("--amp", action="store_true", help="inference under autocast (bf16 on CPU, fp16 on CUDA)")
    parser.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (flips and rotations; 8x the time)")
    args = parser.parse(argv)
    overrides = list(args.overrides)
    cfg = load_config(args.config, overrides)
    split = test_split(cfg)
    if cfg["data"][split] is None:
        raise ConfigError("data.test: a test dataset is required (or data.val)")
    check_data_paths(cfg, (split,))  # only the set that is tested
    dataset, report, notes = read_checked(cfg, split)
    for _, line in notes:
        print(line)
    if split == "val":
        print("note: the config has no data.test; scoring data.val")
    # a preset's options belong to it: a preset named on the command line keeps the config's options only
    # when it is the config's own preset
    own = cfg["eval"]
    presets = {p: (own["options"] if p == own["preset"] else {}) for p in args.preset or [own["preset"]]}
    try:
        get_metrics(presets)
    except (KeyError, ValueError, OSError) as err:
        raise UsageError(f"--preset: {first_line(err)}") from err
    check_scored(cfg, split, dataset, report, presets)

    device = resolve_device(cfg["device"])
    if device.type == "cpu":
        keep_freed_memory()
    model = load_weights(cfg["model"], args.weights, device)
    record = selection_record(args.weights, load_checkpoint(args.weights), describe(dataset), target_digests(dataset)) \
        if args.weights else {"weights": None, "chosen": "no weights (a parameter-free model)", "selected_on_tested_set": False}
    if args.ensemble:
        model = SelfEnsemble(model)
    inputs = data_folders([dataset]) + model_inputs([(args.config, args.weights)])
    with claimed_results(args.out, default_out(cfg, args.weights, describe(dataset)), args.overwrite,
                         inputs) as (out_dir, moved):
        means = score(args, cfg, model, dataset, presets, record, device, out_dir)
        print(results_line(out_dir, moved))
        return means


def score(args, cfg, model, dataset, presets, record, device, out_dir):
    """Evaluate, then write the results into out_dir (claimed); returns the means."""
    print(f"scoring {shown(record['weights'] or cfg['model']['type'])}: {record['chosen']}")
    if record["selected_on_tested_set"]:
        shared = f"{record['shared_images']} of its images, " if "shared_images" in record else ""
        print(f"warning: these weights were selected on the set being tested ({shared}{shown(describe(dataset)['root'])}"
              f"): the scores are optimistic; report a checkpoint chosen without it", file=sys.stderr)
    save_images = args.save_images or cfg["eval"]["save_images"]
    partial = os.path.join(out_dir, ".images.partial")  # images/ appears only once every image is scored
    try:
        amp = amp_mode("auto" if args.amp else "off", device)  # what runs: fp32 where bf16 is not native
        with torch.inference_mode(), autocast(device, amp):
            rows, examples = evaluate(model, dataset, get_metrics(presets), device,
                                      save_dir=partial if save_images else None, num_examples=cfg["eval"]["grid_images"])
    except BaseException as err:
        shutil.rmtree(partial, ignore_errors=True)  # no partial results
        if isinstance(err, NonFiniteOutput):
            raise NonFiniteOutput(f"{shown(args.weights or cfg['model']['type'])}: {err}; nothing was scored or "
                                  f"written") from err
        raise
    if save_images:
        os.replace(partial, os.path.join(out_dir, "images"))  # a claimed folder holds no earlier images/
    if examples:
        triplets = [[t.permute(1, 2, 0).numpy() for t in triplet if t is not None] for triplet in examples]
        figure = comparison_grid(triplets, [caption(row, ("psnr", "ssim", "niqe", "ciede2000")) for row in rows])
        write_image(os.path.join(out_dir, "comparison.png"), figure)
    preset = "+".join(presets)
    options = next(iter(presets.values())) if len(presets) == 1 else presets
    meta = {**provenance(preset, options), "presets": presets, "checkpoint": record, "test_set": describe(dataset),
            "config": cfg, "ensemble": args.ensemble, "amp": amp, "images": len(rows)}
    label = cfg["model"]["type"] + (f" ({shown(os.path.basename(args.weights))})" if args.weights else "")
    text = write_results(out_dir, rows, label, meta)
    print(text, end="")
    return summarize(rows)


def run():
    console(main)


if __name__ == "__main__":
    run()
