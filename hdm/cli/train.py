"""Train a model from a YAML config (hdm-train, or python train.py).

    # doc-test: skip (a synopsis; README.md's training commands run)
    python train.py -c configs/demo/hdm_demo.yaml [key.path=value ...] [--resume auto|PATH] [--overwrite] [--check]

Everything that can be checked is checked before any work: the config (keys, kinds, ranges, every
constructor argument, values that must go together), the losses' weight files, a model with
parameters to train, every pair of the data (readable headers, a crop that fits the smallest image,
inputs as large as the discriminator takes, one size per batch, targets), the run folder and the
resume rules. A run folder holds one run: a second start with the same name needs --resume auto,
another name=..., or --overwrite (which moves the old folder aside). --check does all of these
checks, prints what would run and exits with 0, writing nothing (no run folder, lock or log; the
lock of a live run is only met at the start). Exit codes: 2 for those errors, 1 for a stop while
training (the checkpoint it names is safe), 128 + the signal's number (130, 143) for a stop by SIGINT
or SIGTERM (a checkpoint is saved; the run is not finished); --debug shows a traceback.
"""
from hdm.cli import Parser, console
from hdm.config import check_data_paths, check_training, load_config
from hdm.engine import fit
from hdm.errors import shown
from hdm.run_folder import open_run


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-train")
    parser.add_config("optim.lr=2e-4 model.blocks_per_group=7")
    parser.add_argument("--resume", default=None,
                        help="'auto' (the newest readable checkpoint of this run; a start when it has none) or a path")
    parser.add_argument("--overwrite", action="store_true",
                        help="move an existing run of the same name aside (to <run>.old-<time>) and start anew")
    parser.add_argument("--check", action="store_true",
                        help="check everything that is checked before work, say what would run, write nothing")
    args = parser.parse(argv)
    cfg = load_config(args.config, args.overrides)
    check_training(cfg)
    check_data_paths(cfg, ("train", "val"))  # data.test is test.py's
    if args.check:
        print(summary(open_run(cfg, args.resume, args.overwrite, check_only=True), args.overwrite))
        return 0
    run_dir = fit(cfg, resume=args.resume, overwrite=args.overwrite)
    print(f"run folder: {shown(run_dir)}")
    return run_dir


def summary(planned, overwrite):
    """What a checked run (open_run's Run, not opened) would do, in a few lines."""
    import torch

    from hdm.device import resolve_device
    from hdm.models import build_model, count_parameters

    cfg, tcfg = planned.cfg, planned.cfg["train"]
    with torch.device("meta"):
        params = count_parameters(build_model(cfg["model"]))
    lines = [f"check passed; nothing was written. Would train {cfg['model']['type']} ({params:,} parameters) for "
             f"{tcfg['iterations']} iterations of batch {tcfg['batch_size']} on {resolve_device(cfg['device'])}"]
    for split in ("train", "val"):
        if planned.sets[split] is not None:
            crop = cfg["data"][split].get("crop")
            lines.append(f"  data.{split}: {cfg['data'][split]['type']}, {len(planned.sets[split])} samples"
                         f"{f', crop {crop}' if crop else ''}")
    if cfg["adversarial"]:
        lines.append(f"  adversarial: {cfg['adversarial']['discriminator']['type']}, weight {cfg['adversarial']['weight']}")
    path, ckpt = planned.resume_from
    if path is not None:
        state = f"resumes from {path} (iteration {ckpt.get('iteration')})"
    elif overwrite:
        state = "a new run; a run already there would be moved aside (--overwrite)"
    else:
        state = "a new run"
    lines.append(f"  run folder: {shown(planned.dir)}: {state}")
    return "\n".join(lines)


def run():
    console(main)


if __name__ == "__main__":
    run()
