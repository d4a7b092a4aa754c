"""Convert the HDM authors' released checkpoint (e.g. hdm_haze_sots.pk) for test.py.

    python scripts/convert_official.py trained_models/hdm_haze_sots.pk checkpoints/hdm_sots_release.pth
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hdm.models.convert import convert_official_checkpoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="released checkpoint ({'model': state_dict} with 'module.' keys)")
    parser.add_argument("dst", help="output checkpoint path (.pth)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.src):
        sys.exit(f"{args.src}: no such file")
    dropped = convert_official_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst}; dropped {len(dropped)} unused released entries "
          f"(drconv.*, mix3.w, mix4.w)")


if __name__ == "__main__":
    main()
