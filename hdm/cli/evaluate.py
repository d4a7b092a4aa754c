"""Metrics between two folders of images: restored results and their targets, no model involved
(e.g. to recompute a paper's numbers from its released result images).

    hdm-evaluate PRED_DIR GT_DIR --preset matlab_y_uint8
    hdm-evaluate PRED_DIR GT_DIR --preset basicsr --option y=true --option crop_border=4
    hdm-evaluate results/sots gt/ --pairing prefix     # 1400_1.png -> gt/1400.png (RESIDE)
    hdm-evaluate results/rain200h norain/ --pairing number  # norain-1x2.png -> norain-1.png
    hdm-evaluate results/dicm --preset niqe            # no reference: GT_DIR not needed

A target larger than its result by an equal border on every side (SOTS-indoor's 640x480 ground truth
for 620x460 results) is centre-cropped, as in training and test.py (--no-crop-gt-border turns it off);
any other size difference is an error. Pairing refuses ambiguity: two targets with one key (rain-1 and
norain-1 in one folder, or 1 and 01, by number) is an error naming both. Writes per_image.csv,
summary.md and meta.json (preset, options, library versions) into --out, or a new <pred_dir>_eval[_N]
folder; an --out that holds results is refused unless --overwrite, which moves them aside.
"""
import argparse
import inspect
import os
import re

import numpy as np

from hdm.cli import Parser, UsageError, console
from hdm.config import parse_value
from hdm.data.io import to_tensor
from hdm.data.paired import images_by_stem, size_problem, target_border
from hdm.errors import shown
from hdm.image_io import image_header, read_image
from hdm.metrics import METRIC_PRESETS, NO_REFERENCE, get_metric, least_side
from hdm.outputs import claimed_results, results_line
from hdm.results import provenance, write_results


def _number(stem):
    m = re.search(r"\d+", stem)
    return int(m.group()) if m else None


PAIRINGS = {
    "stem": lambda s: s,                   # same file name
    "prefix": lambda s: s.split("_")[0],   # RESIDE: 1400_1 -> 1400
    "number": _number,                     # rain sets: norain-1x2 -> 1, norain-1 -> 1 (the first number)
}
SHARED_TARGETS = ("prefix",)  # pairings whose results may share a target (a scene's hazy versions, RESIDE)


def pairs(pred_dir, gt_dir, pairing):
    """[(name, pred path, gt path or None)] matched by a key of the file names (PAIRINGS); two targets
    with one key, or two results with one key where targets are not shared, are refused (UsageError)."""
    preds = _images(pred_dir)
    if not preds:
        raise UsageError(f"{shown(pred_dir)}: no images (files named .png, .jpg, .bmp, .tif, ...) in this folder")
    if gt_dir is None:
        return [(k, p, None) for k, p in sorted(preds.items())]
    key = PAIRINGS[pairing]
    gts = _by_key(_images(gt_dir), key, gt_dir, "targets", pairing)
    if pairing not in SHARED_TARGETS:
        _by_key(preds, key, pred_dir, "results", pairing)
    missing = sorted(k for k in preds if key(k) is None or key(k) not in gts)
    if missing:
        raise UsageError(f"{shown(pred_dir)}: {len(missing)} of {len(preds)} images have no target in {shown(gt_dir)} "
                         f"(pairing by {pairing}), e.g. {[shown(m) for m in missing[:3]]}")
    return [(k, p, gts[key(k)]) for k, p in sorted(preds.items())]


def _images(folder):
    try:
        return images_by_stem(folder)
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err


def _by_key(found, key, folder, what, pairing):
    """{key: path} of {stem: path}; two files with one key: UsageError naming both."""
    out = {}
    for stem, path in sorted(found.items()):
        k = key(stem)
        if k is None:  # no number in the name: it pairs with nothing
            continue
        if k in out:
            raise UsageError(f"{shown(folder)}: two {what} for one {pairing} key {k!r}: {shown(out[k])} and "
                             f"{shown(path)}; pairing by {pairing} takes one per key (point the folder at them only, "
                             f"or choose another --pairing)")
        out[k] = path
    return out


# presets that compare a result with its degraded input (loe), which hdm-evaluate does not have; test.py scores them
NEEDS_INPUT = [p for p, fn in METRIC_PRESETS.items() if "lq" in inspect.signature(fn).parameters]
PRESETS = [p for p in METRIC_PRESETS if p not in NEEDS_INPUT]  # what hdm-evaluate scores


def scorable(preset):
    """argparse type of --preset: a preset that needs the degraded input is refused, saying why."""
    if preset in NEEDS_INPUT:
        raise argparse.ArgumentTypeError(f"{preset} compares a result with its degraded input, which hdm-evaluate does not "
                                         f"have (test.py scores {preset}); expected one of {', '.join(PRESETS)}")
    return preset


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-evaluate")
    parser.add_argument("pred_dir")
    parser.add_argument("gt_dir", nargs="?", default=None)
    parser.add_argument("--preset", default="ffa_rgb", type=scorable, choices=PRESETS)
    parser.add_argument("--option", action="append", default=[], help="a preset option key=value (repeatable)")
    parser.add_argument("--pairing", default="stem", choices=list(PAIRINGS))
    parser.add_argument("--no-crop-gt-border", dest="crop_gt_border", action="store_false",
                        help="a target larger by an equal border is an error instead of centre-cropped")
    parser.add_argument("--out", default=None, help="results folder (default: <pred_dir>_eval, or a new _2, _3, ... "
                                                    "when that one holds results)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--out may hold earlier results: they are moved to <out>.old-<time> (nothing is deleted)")
    args = parser.parse(argv)
    options = {k: parse_value(v) for k, _, v in (o.partition("=") for o in args.option)}
    if args.gt_dir is None and args.preset not in NO_REFERENCE:
        parser.error(f"preset {args.preset} needs GT_DIR")
    try:
        metric = get_metric(args.preset, **options)
    except (KeyError, ValueError, TypeError, OSError) as err:  # OSError: a preset's weight file (lpips)
        raise UsageError(f"--option: {err.args[0] if err.args else err}") from err
    matched = pairs(args.pred_dir, args.gt_dir, args.pairing)
    check_sizes(matched, args.crop_gt_border, args.preset, options)
    with claimed_results(args.out, os.path.abspath(args.pred_dir) + "_eval", args.overwrite,
                         [d for d in (args.pred_dir, args.gt_dir) if d]) as (out_dir, moved):
        rows = [score_pair(metric, name, pred_path, gt_path, args.crop_gt_border) for name, pred_path, gt_path in matched]
        meta = {**provenance(args.preset, options), "pred_dir": args.pred_dir, "gt_dir": args.gt_dir,
                "pairing": args.pairing, "crop_gt_border": args.crop_gt_border, "images": len(rows)}
        text = write_results(out_dir, rows, shown(os.path.basename(args.pred_dir.rstrip("/"))), meta)
    print(text + results_line(out_dir, moved))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "name"}


def check_sizes(matched, crop_gt_border, preset, options):
    """UsageError before any work for a file that is not a readable image, a pair whose sizes differ
    (after the border rule), or an image smaller than the preset scores with its options (least_side), from the
    headers."""
    least = least_side(preset, options)
    for _, pred_path, gt_path in matched:
        try:
            pred_hw = image_header(pred_path)[:2]
            gt_hw = image_header(gt_path)[:2] if gt_path else pred_hw
        except OSError as err:
            raise UsageError(str(err)) from err
        if min(pred_hw) < least:
            raise UsageError(f"{shown(pred_path)}: {pred_hw[1]}x{pred_hw[0]} is smaller than preset {preset} scores "
                             f"(at least {least} x {least} pixels)")
        problem = size_problem(pred_path, gt_path, pred_hw, gt_hw, crop_gt_border)
        if problem:
            raise UsageError(problem)


def score_pair(metric, name, pred_path, gt_path, crop_gt_border):
    """One row of scores: a result against its target (the target's border cropped by the border rule)."""
    pred = read_image(pred_path)
    gt = read_image(gt_path) if gt_path else None
    if gt is not None and gt.shape != pred.shape:
        problem = size_problem(pred_path, gt_path, pred.shape[:2], gt.shape[:2], crop_gt_border)
        if problem:
            raise UsageError(problem)
        b = target_border(pred.shape[:2], gt.shape[:2])
        gt = gt[b:-b, b:-b]
    try:
        scores = metric(to_tensor(pred).unsqueeze(0), to_tensor(gt).unsqueeze(0) if gt is not None else None)
    except ValueError as err:  # a preset that cannot score this image: say which
        raise ValueError(f"{shown(pred_path)}: {err}") from err
    return {"name": shown(name), **{k: float(v[0]) for k, v in scores.items()}}


def run():
    console(main)


if __name__ == "__main__":
    run()
