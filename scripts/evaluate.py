"""Metrics between two folders of images: restored results and their targets, no model involved
(e.g. to recompute a paper's numbers from its released result images).

    python scripts/evaluate.py PRED_DIR GT_DIR --preset matlab_y_uint8
    python scripts/evaluate.py PRED_DIR GT_DIR --preset basicsr --option y=true --option crop_border=4
    python scripts/evaluate.py results/sots gt/ --pairing prefix     # 1400_1.png -> gt/1400.png (RESIDE)
    python scripts/evaluate.py results/dicm --preset niqe            # no reference: GT_DIR not needed

Writes per_image.csv, summary.md and meta.json (preset, options, library versions) into --out.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from hdm.config import parse_value  # noqa: E402
from hdm.data.io import read_image, to_tensor  # noqa: E402
from hdm.data.paired import images_by_stem  # noqa: E402
from hdm.metrics import METRIC_PRESETS, NO_REFERENCE, get_metric  # noqa: E402
from hdm.results import provenance, write_results  # noqa: E402


def pairs(pred_dir, gt_dir, pairing):
    """[(name, pred path, gt path or None)] matched by file name (or by the part before the first '_')."""
    preds = images_by_stem(pred_dir)
    if gt_dir is None:
        return [(k, p, None) for k, p in sorted(preds.items())]
    gts = images_by_stem(gt_dir)
    key = (lambda s: s) if pairing == "stem" else (lambda s: s.split("_")[0])
    missing = sorted(k for k in preds if key(k) not in gts)
    if not preds or missing:
        raise SystemExit(f"{pred_dir}: {len(missing)} of {len(preds)} images have no target in {gt_dir} "
                         f"(pairing by {pairing}), e.g. {missing[:3]}")
    return [(k, p, gts[key(k)]) for k, p in sorted(preds.items())]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pred_dir")
    parser.add_argument("gt_dir", nargs="?", default=None)
    parser.add_argument("--preset", default="ffa_rgb", choices=list(METRIC_PRESETS))
    parser.add_argument("--option", action="append", default=[], help="a preset option key=value (repeatable)")
    parser.add_argument("--pairing", default="stem", choices=["stem", "prefix"])
    parser.add_argument("--out", default=None, help="results folder (default: <pred_dir>_eval)")
    args = parser.parse_args(argv)
    options = {k: parse_value(v) for k, _, v in (o.partition("=") for o in args.option)}
    if args.gt_dir is None and args.preset not in NO_REFERENCE:
        parser.error(f"preset {args.preset} needs GT_DIR")
    metric = get_metric(args.preset, **options)
    rows = []
    for name, pred_path, gt_path in pairs(args.pred_dir, args.gt_dir, args.pairing):
        pred = to_tensor(read_image(pred_path)).unsqueeze(0)
        gt = to_tensor(read_image(gt_path)).unsqueeze(0) if gt_path else None
        scores = metric(pred, gt)
        rows.append({"name": name, **{k: float(v[0]) for k, v in scores.items()}})
    out_dir = args.out or args.pred_dir.rstrip("/") + "_eval"
    meta = {**provenance(args.preset, options), "pred_dir": args.pred_dir, "gt_dir": args.gt_dir,
            "pairing": args.pairing, "images": len(rows)}
    text = write_results(out_dir, rows, os.path.basename(args.pred_dir.rstrip("/")), meta)
    print(text, end="")
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "name"}


if __name__ == "__main__":
    main()
