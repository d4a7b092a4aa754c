"""Convert an authors' released checkpoint (HDM's hdm_haze_sots.pk, or AECR-Net's) for test.py.

    python scripts/convert_official.py trained_models/hdm_haze_sots.pk checkpoints/hdm_sots_release.pth
    python scripts/convert_official.py --model aecrnet its_train_AECR.pk checkpoints/aecrnet_release.pth
"""
import os

from hdm.cli import Parser, UsageError, console
from hdm.models.convert import RELEASES, convert_official_checkpoint


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("src", help="released checkpoint ({'model': state_dict} with 'module.' keys)")
    parser.add_argument("dst", help="output checkpoint path (.pth)")
    parser.add_argument("--model", default="hdm", choices=list(RELEASES), help="which release the file is")
    args = parser.parse(argv)
    if not os.path.isfile(args.src):
        raise UsageError(f"{args.src}: no such file")
    dropped = convert_official_checkpoint(args.src, args.dst, args.model)
    print(f"wrote {args.dst}; dropped {len(dropped)} unused released entries {RELEASES[args.model]['unused']}")


if __name__ == "__main__":
    console(main)
