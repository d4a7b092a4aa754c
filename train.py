"""Train a model from a YAML config.

    python train.py -c configs/demo/hdm_demo.yaml [key.path=value ...] [--resume auto|PATH]
"""
import argparse

from hdm.config import ConfigError, check_data_paths, load_config
from hdm.data.prepare import DataError
from hdm.engine import TrainingStopped, fit
from hdm.run_folder import RunFolderError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=2e-4 model.blocks_per_group=7")
    parser.add_argument("--resume", default=None,
                        help="'auto' (the newest readable checkpoint of this run; a start when it has none) or a path")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an existing run of the same name aside (to <run>.old-<time>) and start anew")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        check_data_paths(cfg, ("train", "val"))  # data.test is test.py's
    except ConfigError as err:
        parser.exit(2, f"config error: {err}\n")
    try:
        run_dir = fit(cfg, resume=args.resume, overwrite=args.overwrite)
    except DataError as err:  # found before any work: nothing was written
        parser.exit(2, f"data error: {err}\n")
    except RunFolderError as err:  # likewise
        parser.exit(2, f"run folder: {err}\n")
    except TrainingStopped as err:
        parser.exit(1, f"training stopped: {err}\n")
    print(f"run folder: {run_dir}")


if __name__ == "__main__":
    main()
