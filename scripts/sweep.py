"""Run a set of variants (train + test, one after another, optionally several seeds) and write a table.

    # one variant per config file (e.g. the paper's Table 5 rows), on the demo data:
    python scripts/sweep.py --configs configs/ablations/table5_*.yaml --with configs/sweeps/demo.yaml
    # a grid of overrides over one base config:
    python scripts/sweep.py --base configs/demo/hdm_demo.yaml --grid model.num_regions=1,3,5 --seeds 0 1

Each run lives in <out>/<variant>_s<seed>/ and writes result.json when its test is done, with the
digests of its resolved config and of the package's code. A result is reused only when both match
(a changed --set, --with, config or code runs it again; the old run folder is moved aside, never
deleted, and never while a process holds it), and an interrupted run continues. One sweep at a time
works in a folder (<out>/.lock); a second one on the same --out is refused. Each run is evaluated once: on data.test, or, when the
config has none, on data.val, which is then not also validated during training. The table
(<out>/table.md and table.csv) states the sweep's settings and has one row per variant: PSNR and
SSIM (mean +- sample std over seeds), parameters, MACs at --macs-size, wall time per run, and how many
runs were reused; a first row scores the degraded input the same way.
"""
import copy
import csv
import hashlib
import itertools
import json
import os
import re
import statistics

from hdm.cli import Parser, UsageError, console
from hdm.config import load_config, parse_value, read_yaml
from hdm.data.prepare import build_checked, describe
from hdm.engine import train_and_evaluate
from hdm.errors import shown
from hdm.evaluation import summarize, test_split
from hdm.files import atomic_write
from hdm.identity import name_key, path_key
from hdm.locks import FolderLock
from hdm.models import count_parameters
from hdm.models.complexity import macs
from hdm.results import code_digest, provenance
from hdm.run_folder import config_changes, move_aside, stored_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def variants_from_args(args):
    """[(label, config path, overrides)] in table order."""
    if args.configs:
        return [(label, p, list(args.set)) for label, p in zip(config_labels(args.configs), args.configs)]
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


def config_labels(paths):
    """A label per config file: its name, with as many of its parent folders as tell it from the others
    (a/x.yaml and b/x.yaml are a/x and b/x), unique also as run folder names (slug, compared as a
    case-insensitive filesystem would); one file listed twice is a UsageError."""
    seen = {}
    for path in paths:
        if path_key(path) in seen:
            raise UsageError(f"--configs lists {shown(seen[path_key(path)])} twice (also as {shown(path)})")
        seen[path_key(path)] = path
    parts = [os.path.splitext(os.path.normpath(os.path.abspath(p)))[0].split(os.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len({name_key(slug(label)) for label in labels}) == len(labels):
            return labels
    raise UsageError(f"--configs: no labels tell {', '.join(map(shown, paths))} apart")


def slug(label):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "run"


def config_digest(cfg):
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve(label, path, overrides, extra, seed, out_dir):
    """(run name, resolved config, digests) of one variant and seed: checked like any config, before any
    run starts. The digests are those of the config, the package's code and the data's content
    (hdm.identity.set_fingerprint of every data section), so a result is reused only for the same three."""
    name = f"{slug(label)}_s{seed}"
    cfg = load_config(path, overrides + [f"seed={seed}", f"name={name}", f"work_dir={out_dir}"], extra=extra)
    data = {split: fingerprint(cfg, split) for split in ("train", "val", "test") if cfg["data"][split]}
    return name, cfg, {"config_digest": config_digest(cfg), "code_digest": code_digest(), "data_digest": config_digest(data)}


_FINGERPRINTS = {}  # the data sections of a sweep, read and checked once each


def fingerprint(cfg, split):
    key = json.dumps(cfg["data"][split], sort_keys=True, default=str)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = describe(build_checked(cfg, split)[0])["fingerprint"]
    return _FINGERPRINTS[key]


def run_one(label, seed, name, cfg, digests, out_dir, macs_size):
    """Train and test one variant with one seed; returns its result dict, reused when its config, the
    code and the data are those it was computed with."""
    run_dir, result_path = os.path.join(out_dir, name), os.path.join(out_dir, name, "result.json")
    if os.path.isfile(result_path):
        with open(result_path) as f:
            result = json.load(f)
        if all(result.get(k) == v for k, v in digests.items()):
            return {**result, "reused": True}
        print(f"   {name}: config, code or data changed since its result; running it again", flush=True)
    train_cfg = copy.deepcopy(cfg)
    if test_split(cfg) == "val":  # scored once, after training: no validation of the same images during it
        train_cfg["data"]["val"] = None
    stored = stored_config(run_dir)
    if os.path.isfile(result_path) or (stored and config_changes(stored, train_cfg)[1]):
        print(f"   {name}: the previous run moved to {move_aside(run_dir)}", flush=True)
    model, rows, train_s, test_s = train_and_evaluate(train_cfg, test_cfg=cfg)  # an interrupted run continues
    mean = summarize(rows)
    result = {"label": label, "seed": seed, "psnr": mean["psnr"], "ssim": mean["ssim"],
              "input_psnr": mean["input_psnr"], "input_ssim": mean["input_ssim"], "params": count_parameters(model),
              "macs": macs(model, macs_size), "macs_size": list(macs_size), "images": len(rows),
              "train_s": train_s, "test_s": test_s, "preset": cfg["eval"]["preset"], **digests, "config": cfg,
              "provenance": provenance(cfg["eval"]["preset"], cfg["eval"]["options"])}
    with atomic_write(result_path, "w") as f:
        json.dump(result, f, indent=1)
    return {**result, "reused": False}


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def table(results, labels):
    """Rows (dicts) aggregated over seeds, in the order of `labels`, after a row for the degraded input."""
    (ip, ips), (iss, isss) = mean_std([r["input_psnr"] for r in results]), mean_std([r["input_ssim"] for r in results])
    rows = [{"variant": "input (degraded)", "psnr_mean": ip, "psnr_std": ips, "ssim_mean": iss, "ssim_std": isss,
             "params": 0, "macs": 0, "seeds": len({r["seed"] for r in results}), "wall_s_per_run": 0.0, "reused": ""}]
    for label in labels:
        runs = [r for r in results if r["label"] == label]
        (p, ps), (s, ss) = mean_std([r["psnr"] for r in runs]), mean_std([r["ssim"] for r in runs])
        rows.append({"variant": label, "psnr_mean": p, "psnr_std": ps, "ssim_mean": s, "ssim_std": ss,
                     "params": runs[0]["params"], "macs": runs[0]["macs"], "seeds": len(runs),
                     "wall_s_per_run": statistics.mean(r["train_s"] + r["test_s"] for r in runs),
                     "reused": f"{sum(r['reused'] for r in runs)} of {len(runs)}"})
    return rows


def markdown(rows, title, settings, macs_size):
    lines = [f"### {title}", "", settings, "",
             f"| variant | PSNR (dB) | SSIM | params | GMACs at {macs_size[0]}x{macs_size[1]} | seeds | wall time per run "
             f"| reused |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["variant"] == "input (degraded)":
            lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} | {r['ssim_mean']:.4f} | - | - | - | - | - |")
            continue
        lines.append(f"| {r['variant']} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} ± "
                     f"{r['ssim_std']:.4f} | {r['params']:,} | {r['macs'] / 1e9:.3f} | {r['seeds']} | "
                     f"{r['wall_s_per_run']:.0f} s | {r['reused']} |")
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
    parser.add_argument("--macs-size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"),
                        help="input size of the MACs column (default 256 256)")
    args = parser.parse(argv)
    if args.grid and not args.base:
        parser.error("--grid needs --base")
    if len(set(args.seeds)) < len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: a seed given twice would count one run twice")
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set {item!r}: expected key.path=value")
        parse_value(item.split("=", 1)[1])
    variants = variants_from_args(args)
    extra = read_yaml(args.with_file) if args.with_file else None
    first = args.configs[0] if args.configs else args.base
    out_dir = args.out or os.path.join("runs", "sweeps", os.path.splitext(os.path.basename(first))[0])
    os.makedirs(out_dir, exist_ok=True)
    # one live sweep per folder: a second one would move the first one's runs aside
    lock = FolderLock(out_dir, "wait for it or use another --out")
    lock.acquire()
    try:
        runs = [(label, seed, *resolve(label, path, overrides, extra, seed, out_dir))  # every config checked first
                for label, path, overrides in variants for seed in args.seeds]
        names = [name_key(run[2]) for run in runs]
        shared = [run[2] for run, key in zip(runs, names) if names.count(key) > 1]
        if shared:
            raise UsageError(f"two variants would share the run folder {shown(shared[0])}; give them labels that differ")
        results = []
        for label, seed, name, cfg, digests in runs:
            print(f"== {label} (seed {seed})", flush=True)
            results.append(run_one(label, seed, name, cfg, digests, out_dir, args.macs_size))
    finally:
        lock.release()
    rows = table(results, [v[0] for v in variants])
    title = args.title or f"{len(variants)} variants, metric preset {results[0]['preset']}, {results[0]['images']} test image(s)"
    settings = (f"settings: {'--configs ' + ' '.join(args.configs) if args.configs else '--base ' + args.base}"
                f"{''.join(' --grid ' + g for g in args.grid)}{' --with ' + args.with_file if args.with_file else ''}"
                f"{''.join(' --set ' + v for v in args.set)}; seeds {' '.join(map(str, args.seeds))}; code "
                f"{results[0]['code_digest']}")
    text = markdown(rows, title, settings, args.macs_size)
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
