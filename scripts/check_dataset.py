"""Check a dataset folder before training on it: what version was recognised, counts against the
distributed size, pairing problems and size mismatches (from the image headers; --decode reads every
image in full).

    python scripts/check_dataset.py datasets/RESIDE/ITS --type RESIDE trans=true
    python scripts/check_dataset.py datasets/RESIDE/SOTS/indoor --type RESIDE
    python scripts/check_dataset.py datasets/Rain200H/train --type Rain
    python scripts/check_dataset.py datasets/LOL --type LOL split=test
    python scripts/check_dataset.py datasets/LOL-v2/Real_captured --type LOL split=train
    python scripts/check_dataset.py --list          # the benchmarks and their distributed sizes

Extra key=value arguments are the dataset's constructor arguments. Exit code 1 when there are
problems, 2 for usage errors.
"""
import time

from hdm.cli import Parser, console
from hdm.config import parse_value
from hdm.data import DATASETS, build_dataset
from hdm.data.benchmarks import BENCHMARKS
from hdm.data.prepare import report_notes

ROOT_ARGUMENT = {"PairedFolder": "lq_dir"}


def list_benchmarks():
    print("| benchmark | type | inputs | targets | test set | source | note |\n|---|---|---|---|---|---|---|")
    for name, b in BENCHMARKS.items():
        print(f"| {name} | {b.reader} | {b.inputs:,} | {b.targets:,} | {'yes' if b.test_set else 'no'} | {b.source} "
              f"| {b.note} |")


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("path", nargs="?")
    parser.add_argument("--type", choices=list(DATASETS))
    parser.add_argument("kwargs", nargs="*", help="constructor arguments key=value")
    parser.add_argument("--decode", action="store_true", help="also read every image in full (slower)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their distributed sizes")
    args = parser.parse(argv)
    if args.list:
        list_benchmarks()
        return 0
    if not args.path or not args.type:
        parser.error("give PATH and --type (or --list)")
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
    start = time.perf_counter()
    report = dataset.check(first_only=False)
    problems = list(report.problems)
    for _, line in report_notes(args.type, dataset, report, time.perf_counter() - start):
        print(line)
    if args.decode:
        for i in range(len(dataset)):
            try:
                dataset[i]
            except (OSError, ValueError) as err:
                problems.append(str(err))
    print(f"{args.type} at {args.path}: {len(dataset)} samples, {len(problems)} problem(s)")
    common = report.sizes.most_common(5)
    print("most common input sizes (H x W: count): " + ", ".join(f"{h}x{w}: {n}" for (h, w), n in common))
    for p in problems[:20]:
        print(f"problem: {p}")
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more")
    return 1 if problems else 0


if __name__ == "__main__":
    console(main)
