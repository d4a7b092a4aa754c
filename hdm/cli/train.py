"""Train a model from a YAML config (hdm-train, or python train.py).

    python train.py -c configs/demo/hdm_demo.yaml [key.path=value ...] [--resume auto|PATH] [--overwrite]

Everything that can be checked is checked before any work: the config (keys, types, ranges, every
constructor argument), the losses' weight files, every pair of the data, the run folder. A run
folder holds one run: a second start with the same name needs --resume auto, another name=..., or
--overwrite (which moves the old folder aside). Exit codes: 2 for those errors, 1 for a stop while
training (the checkpoint it names is safe); --debug shows a traceback.
"""
from hdm.cli import Parser, console
from hdm.config import check_data_paths, check_losses, load_config
from hdm.engine import fit


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-train")
    parser.add_config("optim.lr=2e-4 model.blocks_per_group=7")
    parser.add_argument("--resume", default=None,
                        help="'auto' (the newest readable checkpoint of this run; a start when it has none) or a path")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an existing run of the same name aside (to <run>.old-<time>) and start anew")
    args = parser.parse(argv)
    cfg = load_config(args.config, args.overrides)
    check_losses(cfg)
    check_data_paths(cfg, ("train", "val"))  # data.test is test.py's
    run_dir = fit(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"run folder: {run_dir}")
    return run_dir


def run():
    console(main)


if __name__ == "__main__":
    run()
