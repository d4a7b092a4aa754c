"""Paired comparison of two result folders (test.py or hdm-evaluate outputs) over the same images.

    # doc-test: skip (two runs' results folders; tests/test_compare_results.py compares two)
    python scripts/compare_results.py runs/a/test/iter_600_val runs/b/test/iter_600_val            # PSNR
    # doc-test: skip (two results folders A and B; tests/test_compare_results.py compares two)
    python scripts/compare_results.py A B --metric ssim --out compare_a_b

Reads each folder's per_image.csv (and meta.json, whose metric presets must agree), pairs the images by
name (both folders must hold the same names), and reports, for B - A per image: the mean difference
with a bootstrap 95% interval (percentiles of --bootstrap resamples of the images, seeded), the
Wilcoxon signed-rank p-value (two-sided; zero differences dropped, as scipy's default), and how often B
wins, loses or ties. Lower is better for ciede2000, loe, lpips and niqe columns, higher for the others.
--out writes comparison.md and per_image_diff.csv there (atomically); it may not lie in A or B (nor they
in it), and files of an earlier comparison there are replaced only with --overwrite.
"""
import csv
import json
import math
import os

import numpy as np

from hdm.cli import Parser, UsageError, console, non_negative_int
from hdm.errors import shown
from hdm.files import atomic_write, made_folder
from hdm.outputs import check_apart, check_folder, check_writable_outputs

LOWER_IS_BETTER = ("ciede2000", "loe", "lpips", "niqe")
OUTPUT_FILES = ("comparison.md", "per_image_diff.csv")


def read_folder(folder, metric):
    """({name: value}, meta or None) of a result folder; UsageError naming the folder or the column."""
    path = os.path.join(folder, "per_image.csv")
    if not os.path.isfile(path):
        raise UsageError(f"{shown(folder)}: no per_image.csv (expected a result folder of test.py or hdm-evaluate)")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or metric not in rows[0]:
        columns = ", ".join(k for k in (rows[0] if rows else {}) if k != "name") or "none"
        raise UsageError(f"--metric {metric}: not a column of {shown(path)} (its columns: {columns})")
    values = {}
    for row in rows:
        try:
            values[row["name"]] = float(row[metric])
        except (TypeError, ValueError):
            raise UsageError(f"{shown(path)}: {row.get('name')!r} has {metric} {row[metric]!r}, not a number") from None
    meta = None
    try:
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        pass
    return values, meta


def presets(meta):
    if not isinstance(meta, dict):
        return None
    return meta.get("presets") or ({meta["preset"]: meta.get("options", {})} if "preset" in meta else None)


def compare(a, b, metric, resamples=10000, seed=0):
    """The paired statistics of B - A (dicts {name: value} over the same names)."""
    from scipy.stats import wilcoxon

    names = sorted(a)
    diff = np.array([b[n] - a[n] for n in names], dtype=np.float64)
    sign = -1.0 if metric.endswith(LOWER_IS_BETTER) else 1.0
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p = 1.0 if not np.any(diff) else float(wilcoxon(diff).pvalue)
    return {"metric": metric, "images": len(diff), "mean_a": float(np.mean([a[n] for n in names])),
            "mean_b": float(np.mean([b[n] for n in names])), "mean_diff": float(diff.mean()), "ci_low": float(low),
            "ci_high": float(high), "wilcoxon_p": p, "wins": int(np.sum(sign * diff > 0)),
            "losses": int(np.sum(sign * diff < 0)), "ties": int(np.sum(diff == 0)), "resamples": resamples,
            "per_image": [(n, a[n], b[n], b[n] - a[n]) for n in names]}


def report(stats, name_a, name_b):
    s = stats
    better = "lower" if s["metric"].endswith(LOWER_IS_BETTER) else "higher"
    return "\n".join([
        f"### {s['metric']}: B - A over {s['images']} paired images ({better} is better)", "",
        f"A: {name_a} (mean {s['mean_a']:.4f})", f"B: {name_b} (mean {s['mean_b']:.4f})", "",
        "| mean difference | bootstrap 95% interval | Wilcoxon signed-rank p | B wins | B loses | ties |",
        "|---|---|---|---|---|---|",
        f"| {s['mean_diff']:+.4f} | [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] | {s['wilcoxon_p']:.3g} | {s['wins']} | "
        f"{s['losses']} | {s['ties']} |", "",
        f"bootstrap: {s['resamples']} resamples of the images (percentile interval); Wilcoxon: two-sided, zero "
        f"differences dropped", ""])


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("a", help="result folder A (the reference)")
    parser.add_argument("b", help="result folder B (compared with A: differences are B - A)")
    parser.add_argument("--metric", default="psnr", help="a column of per_image.csv (default psnr)")
    parser.add_argument("--bootstrap", type=int, default=10000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--out", default=None, help="folder for comparison.md and per_image_diff.csv")
    parser.add_argument("--overwrite", action="store_true", help="replace comparison.md and per_image_diff.csv in --out")
    args = parser.parse(argv)
    if args.bootstrap < 100:
        parser.error(f"--bootstrap {args.bootstrap}: expected at least 100 resamples")
    outputs = [os.path.join(args.out, name) for name in OUTPUT_FILES] if args.out else []
    if args.out:
        check_folder(args.out, "--out")
        check_apart(args.out, [args.a, args.b], "--out")
        check_writable_outputs(outputs, overwrite=args.overwrite)
    (a, meta_a), (b, meta_b) = read_folder(args.a, args.metric), read_folder(args.b, args.metric)
    if presets(meta_a) and presets(meta_b) and presets(meta_a) != presets(meta_b):
        raise UsageError(f"{shown(args.a)} and {shown(args.b)} were scored with other metric presets "
                         f"({json.dumps(presets(meta_a))} and {json.dumps(presets(meta_b))}): not comparable")
    only = sorted(set(a) ^ set(b))
    if only:
        where = args.a if only[0] in a else args.b
        raise UsageError(f"{shown(args.a)} and {shown(args.b)} hold other images: {only[0]!r} only in {shown(where)} "
                         f"({len(only)} unpaired); expected the same names in both")
    if not all(math.isfinite(v) for v in (*a.values(), *b.values())):
        raise UsageError(f"--metric {args.metric}: a value that is not finite (an identical image's PSNR?); compare "
                         f"another metric")
    stats = compare(a, b, args.metric, args.bootstrap, args.seed)
    text = report(stats, args.a, args.b)
    print(text)
    if args.out:
        with made_folder(args.out):
            with atomic_write(outputs[0], "w") as f:
                f.write(text)
            with atomic_write(outputs[1], "w") as f:
                writer = csv.writer(f)
                writer.writerow(["name", f"{args.metric}_a", f"{args.metric}_b", "b_minus_a"])
                writer.writerows(stats["per_image"])
        print(f"written: {', '.join(map(shown, outputs))}")
    return stats


if __name__ == "__main__":
    console(main)
