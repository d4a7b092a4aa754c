"""Run folders that cannot be clobbered: one run per folder, one live process per run, and a resumed
run whose config may differ from the stored one only in keys that are safe to change. `open_run`
does all of it, and the checks of the data, before a training process writes anything.

    runs/<name>/config.yaml   what runs (rewritten on resume with the allowed changes)
    runs/<name>/.lock         pid, host and start of the live process
    runs/<name>/checkpoints/  iter_<n>.pth, best.pth
"""
import datetime
import gc
import io
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import torch
import yaml

from hdm.checkpoint import TRAINING_ENTRIES, check_entries, latest_readable_checkpoint, list_checkpoints, load_checkpoint
from hdm.config import dump_config
from hdm.data.prepare import DataError, data_folders, describe, prepare
from hdm.device import AMP_RUNS, amp_mode, keep_freed_memory, resolve_device
from hdm.errors import RunFolderError, shown
from hdm.files import open_input
from hdm.identity import contains
from hdm.locks import FolderLock
from hdm.runtime import StopRequest, distributed_setup, run_dir_of, setup_logging

logger = logging.getLogger("hdm")

# keys a resumed run may change: how long it runs, how often it validates, saves and logs, where it
# runs, and where the datasets now lie (a moved copy); anything else would make it another run
RESUMABLE = ("train.iterations", "train.val_every", "train.save_every", "train.log_every", "train.keep_last",
             "train.num_workers", "train.num_val_images", "train.max_nonfinite", "train.find_unused_parameters",
             "device", "work_dir", "eval.save_images", "eval.grid_images")
MOVABLE_DATA_KEYS = ("root", "lq_dir", "gt_dir", "trans_dir")
TRAINING_STATE = ("optimizer", "scheduler", "iteration", "data_position", "rng")  # what best.pth and release weights lack


def flatten(cfg, prefix=""):
    """{'a.b.c': value} of a nested config (lists are values)."""
    out = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _resumable(key):
    parts = key.split(".")
    return key in RESUMABLE or (parts[0] == "data" and len(parts) == 3 and parts[2] in MOVABLE_DATA_KEYS)


def config_changes(stored, current):
    """(allowed, refused): the dotted keys whose values differ between a run's stored config and the
    config it is resumed with."""
    a, b = flatten(stored), flatten(current)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in changed if _resumable(k)], [k for k in changed if not _resumable(k)]


def run_lock(run_dir):
    """The lock of a run folder (hdm.locks.FolderLock): one live process per run."""
    return FolderLock(run_dir, "wait for it, use another name=...")


def move_aside(run_dir):
    """Move an existing run folder to <run_dir>.old-<time> (never delete); returns the new path. A folder
    a live process holds (its .lock, or the .lock of any folder below it) is never moved: RunFolderError."""
    for top, _, names in os.walk(run_dir):  # the run's own lock, and any of a run nested below it
        lock = FolderLock(top, "wait for it, use another name=...")
        if ".lock" in names and lock.holder() is not None:
            raise lock.in_use()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = f"{run_dir.rstrip(os.sep)}.old-{stamp}"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{run_dir.rstrip(os.sep)}.old-{stamp}-{n}"
    shutil.move(run_dir, target)
    return target


# what a run leaves in its folder besides checkpoints: a folder holding any of them holds a run
RUN_TRACES = ("config.yaml", "train.log", "tb", "test")


def check_place(run_dir, sets):
    """RunFolderError when the run folder cannot be one: a file (or a link to one) where it would be, or a
    folder that lies among the data it reads (`sets`: {split: dataset}), or holds them: its files would
    mix with the images, and --overwrite would move the data aside."""
    if os.path.lexists(run_dir) and not os.path.isdir(run_dir):
        raise RunFolderError(f"{shown(run_dir)}: not a folder, where the run folder would be (work_dir/name); "
                             f"choose another name=... or work_dir")
    clash = next((folder for folder in data_folders(sets.values()) if contains(run_dir, folder) or
                  contains(folder, run_dir)), None)
    if clash is not None:
        raise RunFolderError(f"{shown(run_dir)}: the run folder and the data folder {shown(clash)} lie in one another; "
                             f"choose another work_dir or name")


def check_start(run_dir, resume, overwrite):
    """Refuse what would mix two runs in one folder, before anything is written: a start without
    --resume in a folder that holds a run (checkpoints, or its config, log, TensorBoard events or test
    results). Returns the folder the old run was moved to when `overwrite`, else None."""
    ckpts = list_checkpoints(os.path.join(run_dir, "checkpoints"))
    found = [os.path.basename(ckpts[-1][1])] if ckpts else []
    found += [name for name in ("checkpoints/best.pth", *RUN_TRACES) if os.path.lexists(os.path.join(run_dir, name))]
    if resume is not None or not found:
        return None
    if overwrite:
        return move_aside(run_dir)
    raise RunFolderError(f"{shown(run_dir)} already holds a run ({found[0]}): continue it with --resume auto, start "
                         f"another with name=..., or pass --overwrite to move the old one aside (nothing is deleted)")


def stored_config(run_dir):
    """The config.yaml of a run folder, None without one; RunFolderError when it is not a readable mapping."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.lexists(path):
        return None
    try:
        with open_input(path) as f:
            cfg = yaml.safe_load(io.TextIOWrapper(f, encoding="utf-8"))
    except OSError as err:
        raise RunFolderError(f"{err}; move the folder aside (--overwrite) or fix it") from err
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise RunFolderError(f"{shown(path)}: not a readable config ({type(err).__name__}); move the folder aside "
                             f"(--overwrite) or fix it") from err
    if not isinstance(cfg, dict):
        raise RunFolderError(f"{shown(path)}: expected a mapping (the run's config), got {type(cfg).__name__}")
    return cfg


@dataclass
class Run:
    """What a training process holds besides the TrainState: where it writes, what it reads, how it
    logs, and the resume checkpoint found before any work."""
    cfg: dict
    dir: str
    rank: int
    world: int
    local_rank: int
    sets: dict
    resume_from: tuple = (None, None)
    lock: FolderLock = None
    stop: StopRequest = None
    device: torch.device = None
    amp: str = "off"
    writer: object = None
    bar: object = None
    clock: list = field(default_factory=list)

    @property
    def main(self):
        return self.rank == 0  # only the main process logs, validates and saves

    @property
    def ckpt_dir(self):
        return os.path.join(self.dir, "checkpoints")


def open_run(cfg, resume, overwrite, check_only=False):
    """Everything checked before anything is written, then the run folder taken: the data (every pair's
    headers), the folder (a start over an existing run is refused), the resume checkpoint (readable,
    its config differing only in resumable keys). Then the lock, the log and config.yaml. check_only:
    return the Run just before the first write (hdm-train --check); nothing is written or moved."""
    rank, world, local_rank = distributed_setup(join=not check_only)  # under torchrun: one process per device
    tcfg = cfg["train"]
    if cfg["data"]["train"] is None:
        raise DataError("data.train: a training dataset is required")
    sets, notes = prepare(cfg, ("train", "val"))  # DataError: one line naming the files
    if len(sets["train"]) < tcfg["batch_size"] * world:  # fewer: not one whole global batch, an epoch of none
        raise DataError(f"data.train has {len(sets['train'])} samples, fewer than train.batch_size={tcfg['batch_size']}"
                        f"{f' x {world} processes' if world > 1 else ''}")
    run = Run(cfg, run_dir_of(cfg), rank, world, local_rank, sets)
    check_place(run.dir, sets)
    # with check_only and overwrite there is nothing to refuse, and moving the old run aside is a write
    moved = check_start(run.dir, resume, overwrite) if run.main and not (check_only and overwrite) else None
    run.resume_from, changes = find_resume(cfg, run, resume)
    if check_only:
        if run.main:
            lock = run_lock(run.dir)
            if lock.holder() is not None:
                raise lock.in_use()
            probe_writable(run.dir)
        return run
    if run.main:
        try:
            os.makedirs(run.ckpt_dir, exist_ok=True)
        except OSError as err:
            raise RunFolderError(f"{run.dir}: cannot create the run folder ({err.strerror or err}); check "
                                 f"work_dir") from err
        run.lock = run_lock(run.dir)
        run.lock.acquire()
        setup_logging(run.dir)
    run.device = resolve_device(cfg["device"])
    run.amp = amp_mode(tcfg["amp"], run.device)  # bf16 on a CPU without native bf16: fp32, said once
    if run.main:  # what runs, after the resume check; a mode that differs from the one asked is said in it
        ran = [] if run.amp == tcfg["amp"] else [f"train.amp: {tcfg['amp']} was asked; this run computes in "
                                                 f"{AMP_RUNS[run.amp]} on {run.device.type}"]
        dump_config(cfg, os.path.join(run.dir, "config.yaml"), notes=ran)
        if moved:
            logger.info("the previous run of %s was moved to %s", run.dir, moved)
        if changes:
            logger.info("resumed with changed %s", ", ".join(changes))
        for level, line in notes:
            logger.log(level, line)
    run.stop = StopRequest()  # SIGINT / SIGTERM: finish the step (or stop validating), save, exit
    if run.device.type == "cpu":
        keep_freed_memory()  # large tensors reuse freed memory instead of fresh zero-filled pages
    if run.device.type == "cuda" and world > 1:
        run.device = torch.device("cuda", local_rank)
    return run


def probe_writable(folder):
    """RunFolderError unless `folder` is a writable folder or can be made: its nearest existing ancestor
    is a folder that takes a new entry (probed with an empty folder, removed at once)."""
    parent = os.path.abspath(folder)
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise RunFolderError(f"{shown(parent)}: not a folder, so {shown(folder)} cannot be made; check work_dir")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hdm-check-", dir=parent))
    except OSError as err:
        raise RunFolderError(f"{shown(folder)}: cannot be made or written ({err.strerror or err}); check work_dir") from err


def find_resume(cfg, run, resume):
    """((path, checkpoint) or (None, None), allowed config changes). --resume auto in a run without
    checkpoints starts it; a run whose checkpoints are all unreadable, a missing or unreadable
    --resume file, or a config that differs in keys a run cannot change are errors (RunFolderError)."""
    if resume is None:
        return (None, None), []
    if resume == "auto":
        found = list_checkpoints(run.ckpt_dir)
        if not found:  # a start, into a folder whose config (if any) must be this one's
            stored = stored_config(run.dir)
            refused = config_changes(stored, cfg)[1] if stored else []
            if refused:
                raise RunFolderError(f"--resume auto: {shown(run.dir)} has no checkpoint but its config.yaml differs "
                                     f"in {', '.join(refused)}; start a new run (name=...) or --overwrite")
            return (None, None), []
        path, ckpt = latest_readable_checkpoint(run.ckpt_dir)
        if path is None:
            raise RunFolderError(f"--resume auto: none of the {len(found)} checkpoints in {run.ckpt_dir} is readable; "
                                 f"nothing was started (move them aside to start again)")
    else:
        try:
            path, ckpt = resume, load_checkpoint(resume)
        except (OSError, RuntimeError) as err:
            raise RunFolderError(f"--resume: {str(err).splitlines()[0]}") from err
    missing = [key for key in TRAINING_STATE if key not in ckpt]
    if missing:
        raise RunFolderError(f"--resume {path}: holds weights, not a training state (no {', '.join(missing)}); "
                             f"resume from a run's checkpoints/iter_<n>.pth, or start a new run from scratch")
    try:
        check_entries(ckpt, path, TRAINING_ENTRIES)
    except RuntimeError as err:
        raise RunFolderError(f"--resume: {err}") from err
    newer = [p for it, p in list_checkpoints(run.ckpt_dir) if it > ckpt["iteration"]] if resume != "auto" else []
    if newer:  # (--resume auto takes the newest readable one: newer files are unreadable, and may be replaced)
        raise RunFolderError(f"--resume {shown(path)}: the run has newer checkpoints ({os.path.basename(newer[-1])}), "
                             f"which continuing from iteration {ckpt['iteration']} would replace; continue from the "
                             f"newest (--resume auto), or start another run (name=...)")
    if ckpt["iteration"] > cfg["train"]["iterations"]:
        raise RunFolderError(f"--resume {path}: at iteration {ckpt['iteration']}, beyond train.iterations="
                             f"{cfg['train']['iterations']}; give a larger train.iterations")
    stored = ckpt.get("config") or stored_config(run.dir)
    allowed, refused = config_changes(stored, cfg) if stored else ([], [])
    refused += other_data(ckpt.get("data"), run.sets, [k for k in allowed if k.startswith("data.")])
    if refused:
        raise RunFolderError(f"--resume {path}: the config differs from the run's in {', '.join(refused)}, which a "
                             f"run cannot change; start a new run (name=...) to change them")
    return (path, ckpt), allowed


def other_data(recorded, sets, moved):
    """The data sections whose images differ from those a checkpoint recorded (its content fingerprints,
    hdm.identity.set_fingerprint): a moved copy is the same data, another set or a changed folder is not.
    A section whose folder moved is refused when the checkpoint predates fingerprints (it cannot be
    verified). `moved`: the changed data keys."""
    out = []
    for split, dataset in sets.items():
        old = (recorded or {}).get(split) or {}
        new = describe(dataset) if dataset is not None else {}
        if old.get("fingerprint") and new.get("fingerprint"):
            if old["fingerprint"] != new["fingerprint"]:
                out.append(f"data.{split} (other images: {new['samples']} samples now, {old['samples']} when "
                           f"the run started, or the same number with other names, sizes or content)")
        elif any(key.startswith(f"data.{split}.") for key in moved):
            out.append(f"data.{split} (moved, and the checkpoint records no fingerprint to show it holds the same "
                       f"images)")
    return out


def close_run(run):
    if run.stop is not None:
        run.stop.restore()
    if run.bar is not None:
        run.bar.close()
    if run.writer is not None:
        run.writer.close()
    if run.lock is not None:
        run.lock.release()
    if run.world > 1 and torch.distributed.is_initialized():
        # fit() has dropped its DDP wrappers, whose reducers hold the process group; collecting what is left of
        # them lets the group and its gloo threads go here, in destroy_process_group, and not at some later point
        gc.collect()
        torch.distributed.destroy_process_group()
