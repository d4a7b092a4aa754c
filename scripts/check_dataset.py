"""Check a dataset folder before training on it: what version was recognised, counts against the
distributed size, pairing problems and size mismatches (from the image headers; --decode reads every
image in full). Without --type, every reader is tried on the folder first: the ones that read it are
listed with their counts and the benchmark each recognises, and the one chosen is checked.

    # doc-test: skip (needs the benchmark's files)
    python scripts/check_dataset.py datasets/RESIDE/SOTS/indoor     # no --type: which readers read it, then the check
    # doc-test: skip (needs the benchmark's files)
    python scripts/check_dataset.py datasets/RESIDE/ITS --type RESIDE trans=true
    # doc-test: skip (needs the benchmark's files)
    python scripts/check_dataset.py datasets/RESIDE/SOTS/indoor --type RESIDE
    python scripts/check_dataset.py datasets/Rain200H/train --type Rain
    # doc-test: skip (needs the benchmark's files)
    python scripts/check_dataset.py datasets/LOL --type LOL split=test
    # doc-test: skip (needs the benchmark's files)
    python scripts/check_dataset.py datasets/LOL-v2/Real_captured --type LOL split=train
    python scripts/check_dataset.py --list          # the benchmarks and their distributed sizes

Extra key=value arguments are the dataset's constructor arguments (with --type). Exit code 1 when
there are problems, 2 for usage errors and for a folder no reader reads.

The choice among the readers that read a folder: one that recognises a benchmark before one that
does not; then a reader of its own layouts before those that read any folder of images (ImageFolder,
SideBySide); then the order of TRIES.
"""
import json
import os
import time
from dataclasses import dataclass

from hdm.cli import Parser, console
from hdm.config import parse_value
from hdm.data import DATASETS, build_dataset
from hdm.data.benchmarks import BENCHMARKS
from hdm.data.prepare import report_notes
from hdm.errors import DataError, shown
from hdm.image_io import images_in

ROOT_ARGUMENT = {"PairedFolder": "lq_dir"}
# The readers tried on a folder without --type, in the order that breaks ties (each with the arguments of the
# try): LOL, NumberedHaze, Rain and RESIDE read only their own folder and file names; PairedFolder any two folders
# whose images share names; ImageFolder and SideBySide any folder of images (ANY_IMAGES), ImageFolder first as it
# claims no pairs (SideBySide is chosen for DID-data, whose folder names it recognises).
TRIES = (("LOL", {"split": "train"}), ("LOL", {"split": "test"}), ("NumberedHaze", {"split": "all"}), ("Rain", {}),
         ("RESIDE", {}), ("PairedFolder", {}), ("ImageFolder", {}), ("SideBySide", {}))
ANY_IMAGES = ("ImageFolder", "SideBySide")
# PairedFolder is tried with each sub-folder named as the targets of a public set is, and each other sub-folder
# as its inputs
TARGET_FOLDERS = ("GT", "gt", "clear", "target", "cleancrop", "norain", "high", "Normal", "normal")


@dataclass
class Reading:
    cfg: dict      # the dataset config that read it
    dataset: object


def list_benchmarks():
    print("| benchmark | type | inputs | targets | test set | source | note |\n|---|---|---|---|---|---|---|")
    for name, b in BENCHMARKS.items():
        print(f"| {name} | {b.reader} | {b.inputs:,} | {b.targets:,} | {'yes' if b.test_set else 'no'} | {b.source} "
              f"| {b.note} |")
        for c in b.copies:
            print(f"| {name} as {c.release} | {b.reader} | {c.inputs:,} | {c.targets:,} | "
                  f"{'yes' if b.test_set else 'no'} | {c.source} | {c.note} |")


def _configs(path):
    """The dataset configs tried on a folder, in the order of TRIES."""
    subs = sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))
    for kind, args in TRIES:
        if kind == "PairedFolder":
            for gt in (n for n in subs if n in TARGET_FOLDERS):
                for lq in (n for n in subs if n != gt):
                    yield {"type": kind, "lq_dir": os.path.join(path, lq), "gt_dir": os.path.join(path, gt)}
        else:
            yield {"type": kind, "root": path, **args}


def readings(path):
    """Reading of every try that reads the folder, in the order of TRIES; a try of the same reader that reads
    the same samples as an earlier one is dropped, and the arguments that made no difference with it."""
    found = []
    for cfg in _configs(path):
        try:
            dataset = build_dataset(cfg)
        except (OSError, ValueError):
            continue
        same = next((r for r in found if type(r.dataset) is type(dataset) and r.dataset.samples == dataset.samples),
                    None)
        if same:
            same.cfg = {k: v for k, v in same.cfg.items() if cfg.get(k) == v}
        else:
            found.append(Reading(cfg, dataset))
    return found


def _rank(reading):
    return reading.dataset.benchmark is None, reading.cfg["type"] in ANY_IMAGES


def _arguments(cfg):
    return " ".join(f"{k}={v}" for k, v in cfg.items() if k not in ("type", "root"))


def choose(found):
    """(the Reading chosen, why) among the readings of a folder (see the module doc)."""
    ranked = sorted(found, key=_rank)  # stable: ties keep the order of TRIES
    best, kind = ranked[0], ranked[0].cfg["type"]
    others = [r for r in ranked if r.cfg["type"] != kind]
    if not others:
        why = "the only reader that reads it"
    elif best.dataset.benchmark and not others[0].dataset.benchmark:
        why = f"it recognises {best.dataset.benchmark}; the others recognise no benchmark"
    elif _rank(best)[1] != _rank(others[0])[1]:
        why = "it reads a layout of its own; the others read any folder of images"
    else:
        tied = ", ".join(dict.fromkeys(r.cfg["type"] for r in ranked if _rank(r) == _rank(best)))
        order = ", ".join(dict.fromkeys(k for k, _ in TRIES))
        unnamed = "" if best.dataset.benchmark else "; no benchmark recognised: name it with benchmark=NAME"
        why = f"{tied} read it alike; {kind} comes first in the order {order}{unnamed}"
    also = [_arguments(r.cfg) for r in ranked[1:] if r.cfg["type"] == kind]
    return best, why + "".join(f"; {kind} also reads it with {a}" for a in also)


def _described(reading):
    cfg, ds = reading.cfg, reading.dataset
    args = _arguments(cfg)
    recognised = f"recognised {ds.benchmark}" if ds.benchmark else "no benchmark recognised"
    return (f"{cfg['type']}{' ' + args if args else ''}: {len(ds)} samples ({ds.found[0]:,} inputs / "
            f"{ds.found[1]:,} targets), {recognised} [{ds.version}]")


def detect(path):
    """Print the readers that read `path` and the one chosen; return its Reading. DataError when none
    reads it (one line saying what the folder holds)."""
    if not os.path.isdir(path):
        raise DataError(f"{shown(path)}: no such folder")
    found = readings(path)
    if not found:
        subs = sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)))
        raise DataError(f"{shown(path)}: no reader reads this folder: it holds {len(images_in(path))} images; "
                        f"sub-folders: {[shown(n) for n in subs[:8]]}{' ...' if len(subs) > 8 else ''}; "
                        f"datasets/README.md lists the layouts (--type NAME gives one reader's reason)")
    print(f"readers that read {shown(path)}:")
    for reading in found:
        print(f"  {_described(reading)}")
    best, why = choose(found)
    snippet = json.dumps(best.cfg)  # JSON is YAML: every string quoted, a newline as \n, bytes as \udcNN
    print(f"chosen: {best.cfg['type']} ({why}); in a config: {snippet}")
    return best


def check(dataset, kind, path, decode):
    """Print the check of a dataset (notes, counts, problems); 1 when there are problems, else 0."""
    start = time.perf_counter()
    report = dataset.check(first_only=False)
    problems = list(report.problems)
    for _, line in report_notes(kind, dataset, report, time.perf_counter() - start):
        print(line)
    if decode:
        for i in range(len(dataset)):
            try:
                dataset[i]
            except (OSError, ValueError) as err:
                problems.append(str(err))
    print(f"{kind} at {shown(path)}: {len(dataset)} samples, {len(problems)} problem(s)")
    common = report.sizes.most_common(5)
    print("most common input sizes (H x W: count): " + ", ".join(f"{h}x{w}: {n}" for (h, w), n in common))
    for p in problems[:20]:
        print(f"problem: {p}")
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more")
    return 1 if problems else 0


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("path", nargs="?")
    parser.add_argument("--type", choices=list(DATASETS))
    parser.add_argument("kwargs", nargs="*", help="constructor arguments key=value (with --type)")
    parser.add_argument("--decode", action="store_true", help="also read every image in full (slower)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their distributed sizes")
    args = parser.parse(argv)
    if args.list:
        list_benchmarks()
        return 0
    if not args.path:
        parser.error("give PATH (and --type NAME to skip the detection), or --list")
    if not args.type:
        if args.kwargs:
            parser.error(f"key=value arguments {args.kwargs} need --type")
        chosen = detect(args.path)
        return check(chosen.dataset, chosen.cfg["type"], args.path, args.decode)
    bad = [a for a in args.kwargs if "=" not in a]
    if bad:
        parser.error(f"expected key=value arguments, got {bad}")
    cfg = {"type": args.type, ROOT_ARGUMENT.get(args.type, "root"): args.path}
    cfg.update({k: parse_value(v) for k, _, v in (a.partition("=") for a in args.kwargs)})
    try:
        dataset = build_dataset(cfg)
    except TypeError as err:
        parser.error(str(err))
    except (OSError, ValueError) as err:
        print(f"problem: {err}")
        return 1
    return check(dataset, args.type, args.path, args.decode)


if __name__ == "__main__":
    console(main)
