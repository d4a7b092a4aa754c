"""Convert an authors' released checkpoint (HDM's hdm_haze_sots.pk, or AECR-Net's) for test.py.

    # doc-test: skip (needs the authors' released file)
    python scripts/convert_official.py trained_models/hdm_haze_sots.pk checkpoints/hdm_sots_release.pth
    # doc-test: skip (needs the authors' released file)
    python scripts/convert_official.py --model aecrnet its_train_AECR.pk checkpoints/aecrnet_release.pth

The output never replaces the released file, however either path is written (hdm.outputs); an existing
output is replaced only with --overwrite.
"""
import os

from hdm.cli import Parser, UsageError, console
from hdm.errors import shown
from hdm.models.convert import RELEASES, convert_official_checkpoint
from hdm.outputs import check_writable_outputs


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("src", help="released checkpoint ({'model': state_dict} with 'module.' keys)")
    parser.add_argument("dst", help="output checkpoint path (.pth)")
    parser.add_argument("--model", default="hdm", choices=list(RELEASES), help="which release the file is")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (never the released file)")
    args = parser.parse(argv)
    if not os.path.lexists(args.src):
        raise UsageError(f"{shown(args.src)}: no such file")
    check_writable_outputs([args.dst], [args.src], args.overwrite)
    dropped = convert_official_checkpoint(args.src, args.dst, args.model)
    print(f"wrote {shown(args.dst)}; dropped {len(dropped)} unused released entries {RELEASES[args.model]['unused']}")


if __name__ == "__main__":
    console(main)
