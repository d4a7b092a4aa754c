"""Check a dataset folder before training on it: counts, pairing problems, size mismatches.

    python scripts/check_dataset.py datasets/RESIDE/ITS --type RESIDE trans=true
    python scripts/check_dataset.py datasets/Rain200H/train --type Rain
    python scripts/check_dataset.py datasets/LOL --type LOL split=test

Extra key=value arguments are the dataset's constructor arguments. Exit code 1 when there are problems.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hdm.config import parse_value  # noqa: E402
from hdm.data import DATASETS, build_dataset  # noqa: E402

ROOT_ARGUMENT = {"PairedFolder": "lq_dir", "ImageFolder": "root"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path")
    parser.add_argument("--type", required=True, choices=list(DATASETS))
    parser.add_argument("kwargs", nargs="*", help="constructor arguments key=value")
    args = parser.parse_args(argv)
    cfg = {"type": args.type, ROOT_ARGUMENT.get(args.type, "root"): args.path}
    cfg.update({k: parse_value(v) for k, _, v in (a.partition("=") for a in args.kwargs)})
    try:
        dataset = build_dataset(cfg)
    except (OSError, ValueError, TypeError) as err:
        print(f"problem: {err}")
        return 1
    problems = []
    sizes = {}
    for i in range(len(dataset)):
        try:
            sample = dataset[i]
        except (OSError, ValueError) as err:
            problems.append(str(err))
            continue
        shape = tuple(sample["lq"].shape[-2:])
        sizes[shape] = sizes.get(shape, 0) + 1
    print(f"{args.type} at {args.path}: {len(dataset)} samples, {len(problems)} problem(s)")
    common = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    print("most common sizes (H x W: count): " + ", ".join(f"{h}x{w}: {n}" for (h, w), n in common))
    for p in problems[:20]:
        print(f"problem: {p}")
    if len(problems) > 20:
        print(f"... and {len(problems) - 20} more")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
