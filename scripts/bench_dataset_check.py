"""Time the check before work on a generated RESIDE ITS-sized tree: 1,399 clear images, 13,990 hazy
images and 13,990 transmission maps at 620x460 (constant-colour PNGs, so the tree is small on disk;
the check reads each file's header and its last bytes, never its pixels, so pixel content does not
change its time).

    # doc-test: skip (writes a synthetic ITS of 13,990 pairs)
    python scripts/bench_dataset_check.py [--scenes 1399] [--keep DIR] [--repeat 3]

Prints the time to list and pair the files (building the reader) and to check every pair from its
headers, as training and test.py do before their first iteration. The files were just written (or
read by the previous repeat), so they are in the page cache: on a cold network file system the first
check is slower. --keep DIR writes the tree there and keeps it; a DIR that already holds one is reused.
"""
import os
import shutil
import tempfile
import time

import numpy as np

from hdm.cli import Parser, console, positive_int
from hdm.data import RESIDE
from hdm.image_io import encode_image


def make_its(root, scenes, per_scene=10, size=(460, 620)):
    """ITS v2 as distributed: hazy/<id>_<k>_<beta>.png, clear/<id>.png, trans/<id>_<k>.png."""
    for sub in ("hazy", "clear", "trans"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    maps = [encode_image(np.full(size, k, np.uint8)) for k in range(1, per_scene + 1)]
    for i in range(1, scenes + 1):
        colour = encode_image(np.full((*size, 3), i % 256, np.uint8))
        files = {os.path.join("clear", f"{i}.png"): colour}
        for k in range(1, per_scene + 1):
            files[os.path.join("hazy", f"{i}_{k}_0.{80 + k}.png")] = colour
            files[os.path.join("trans", f"{i}_{k}.png")] = maps[k - 1]
        for rel, data in files.items():
            with open(os.path.join(root, rel), "wb") as f:
                f.write(data)


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("--scenes", type=positive_int, default=1399, help="clear images (ITS: 1,399; 10 hazy each)")
    parser.add_argument("--keep", default=None,
                        help="write the tree here and keep it, or reuse the one there (default: a temp folder)")
    parser.add_argument("--repeat", type=positive_int, default=1, help="time the check this many times")
    args = parser.parse(argv)
    root = args.keep or tempfile.mkdtemp(prefix="its_")
    try:
        t0 = time.perf_counter()
        reused = os.path.isdir(os.path.join(root, "clear"))
        if not reused:
            make_its(root, args.scenes)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        dataset = RESIDE(root, trans=True)
        built = time.perf_counter() - t0
        print(f"{len(dataset)} pairs ({3 * len(dataset)} image headers with the maps); tree "
              f"{'reused' if reused else f'written in {made:.1f} s'}; list and pair: {built:.2f} s")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = dataset.check()
            checked = time.perf_counter() - t0
            print(f"header check: {checked:.2f} s ({1e3 * checked / max(len(dataset), 1):.3f} ms per pair; "
                  f"{report.pairs} checked, {len(report.problems)} problems)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    console(main)
