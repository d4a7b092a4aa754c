"""Run a set of variants (train + test, one after another, optionally several seeds) and write a table.

    # one variant per config file (e.g. the paper's Table 5 rows), on the demo data:
    python scripts/sweep.py --configs configs/ablations/table5_*.yaml --with configs/sweeps/demo.yaml
    # a grid of overrides over one base config:
    python scripts/sweep.py --base configs/demo/hdm_demo.yaml --grid model.num_regions=1,3,5 --seeds 0 1

Each run lives in <out>/<variant>_s<seed>/ and writes result.json when its test is done; a run whose
result.json exists is not run again. The table (<out>/table.md and table.csv) has one row per variant:
PSNR and SSIM (mean +- sample std over seeds), parameter count, and wall time per run.
"""
import csv
import itertools
import json
import os
import re
import statistics

from hdm.cli import Parser, UsageError, console
from hdm.config import load_config, parse_value, read_yaml
from hdm.engine import summarize, train_and_evaluate
from hdm.files import atomic_write
from hdm.models import count_parameters
from hdm.results import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def variants_from_args(args):
    """[(label, config path, overrides)] in table order."""
    if args.configs:
        return [(os.path.splitext(os.path.basename(p))[0], p, list(args.set)) for p in args.configs]
    axes = []
    for spec in args.grid:
        key, _, values = spec.partition("=")
        if not values:
            raise UsageError(f"--grid {spec!r}: expected key=v1,v2,...")
        axes.append([(key, v) for v in values.split(",")])
    out = []
    for combo in itertools.product(*axes):
        label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in combo) or "base"
        out.append((label, args.base, list(args.set) + [f"{k}={v}" for k, v in combo]))
    return out


def slug(label):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "run"


def run_one(label, path, overrides, extra, seed, out_dir):
    """Train and test one variant with one seed; returns its result dict (read back if it exists)."""
    name = f"{slug(label)}_s{seed}"
    result_path = os.path.join(out_dir, name, "result.json")
    if os.path.isfile(result_path):
        with open(result_path) as f:
            return json.load(f)
    cfg = load_config(path, overrides + [f"seed={seed}", f"name={name}", f"work_dir={out_dir}"], extra=extra)
    model, rows, train_s, test_s = train_and_evaluate(cfg)  # an interrupted run continues
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    mean = summarize(rows)
    result = {"label": label, "seed": seed, "psnr": mean["psnr"], "ssim": mean["ssim"],
              "input_psnr": mean["input_psnr"], "params": count_parameters(model), "images": len(rows),
              "train_s": train_s, "test_s": test_s, "preset": cfg["eval"]["preset"],
              "provenance": provenance(cfg["eval"]["preset"], cfg["eval"]["options"])}
    with atomic_write(result_path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(results, labels):
    """Rows (dicts) aggregated over seeds, in the order of `labels`."""
    rows = []
    for label in labels:
        runs = [r for r in results if r["label"] == label]
        (p, ps), (s, ss) = mean_std([r["psnr"] for r in runs]), mean_std([r["ssim"] for r in runs])
        rows.append({"variant": label, "psnr_mean": p, "psnr_std": ps, "ssim_mean": s, "ssim_std": ss,
                     "params": runs[0]["params"], "seeds": len(runs),
                     "wall_s_per_run": statistics.mean(r["train_s"] + r["test_s"] for r in runs)})
    return rows


def markdown(rows, title):
    lines = [f"### {title}", "", "| variant | PSNR (dB) | SSIM | params | seeds | wall time per run |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} ± "
                     f"{r['ssim_std']:.4f} | {r['params']:,} | {r['seeds']} | {r['wall_s_per_run']:.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = Parser(__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--configs", nargs="+", help="one variant per config file")
    what.add_argument("--base", help="a base config for --grid")
    parser.add_argument("--grid", action="append", default=[], help="key=v1,v2,... (repeatable: a cartesian product)")
    parser.add_argument("--with", dest="with_file", default=None,
                        help="YAML of shared settings merged over every variant (e.g. configs/sweeps/demo.yaml)")
    parser.add_argument("--set", action="append", default=[], help="an override for every variant (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<name of the first config>)")
    parser.add_argument("--title", default=None)
    args = parser.parse(argv)
    if args.grid and not args.base:
        parser.error("--grid needs --base")
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected key.path=value")
        parse_value(item.split("=", 1)[1])
    variants = variants_from_args(args)
    extra = read_yaml(args.with_file) if args.with_file else None
    first = args.configs[0] if args.configs else args.base
    out_dir = args.out or os.path.join("runs", "sweeps", os.path.splitext(os.path.basename(first))[0])
    os.makedirs(out_dir, exist_ok=True)

    results = []
    for label, path, overrides in variants:
        for seed in args.seeds:
            print(f"== {label} (seed {seed})", flush=True)
            results.append(run_one(label, path, overrides, extra, seed, out_dir))
    rows = table(results, [v[0] for v in variants])
    title = args.title or f"{len(variants)} variants, metric preset {results[0]['preset']}, {results[0]['images']} test image(s)"
    text = markdown(rows, title)
    with atomic_write(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text)
    with atomic_write(os.path.join(out_dir, "table.csv"), "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(text)
    print(f"written: {os.path.join(out_dir, 'table.md')}, {os.path.join(out_dir, 'table.csv')}")
    return rows


if __name__ == "__main__":
    console(main)
