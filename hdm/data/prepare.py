"""Datasets of a config, built and checked before any work: every pair's headers (readable, sizes
paired after the border rule), counts against the distributed sizes, and validation splits that
neither overlap training nor are a test set without saying so."""
import logging
import time

from hdm.errors import DataError, shown
from hdm.identity import shared_images

from . import benchmarks, build_dataset
from .paired import PairedDataset

WARNING, INFO = logging.WARNING, logging.INFO


def _last_line(err):
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def build_checked(cfg, split):
    """(dataset, notes) for data.<split>: built, every sample checked from its headers; notes are
    (logging level, line) pairs to log. DataError on the first problem."""
    where = f"data.{split}"
    try:
        dataset = build_dataset(cfg["data"][split])
        if not isinstance(dataset, PairedDataset):  # a reader registered by the user
            return dataset, [(INFO, f"{where}: {type(dataset).__name__}: {len(dataset)} samples (not checked)")]
        start = time.perf_counter()
        report = dataset.check()
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise DataError(f"{where}: {_last_line(err)}") from err
    return dataset, report_notes(where, dataset, report, time.perf_counter() - start)


def describe(dataset):
    """PairedDataset.describe(), or the little that is known of a user's own reader."""
    if isinstance(dataset, PairedDataset):
        return dataset.describe()
    return {"type": type(dataset).__name__, "root": "", "benchmark": None, "version": "", "split": None, "holdout": 0,
            "take": "rest", "samples": len(dataset), "test_set": False, "fingerprint": None}


def report_notes(where, dataset, report, seconds):
    """(logging level, line) pairs saying what a dataset read and what its check found: the version,
    the counts against the distributed size (a warning when they differ), border-cropped targets."""
    info = dataset.describe()
    notes = [(INFO, f"{where}: {info['type']} at {info['root']} ({info['version']}): {len(dataset)} samples"
                    f"{f' (take {dataset.take} of holdout {dataset.holdout})' if dataset.holdout else ''}; "
                    f"headers checked in {seconds:.1f} s")]
    differs, line = benchmarks.count_line(where, dataset.benchmark, dataset.found)
    notes.append((WARNING if differs else INFO, line))
    if report.border_pairs:
        notes.append((INFO, f"{where}: {report.border_pairs} of {report.pairs} targets are larger than their inputs by "
                            f"a {'/'.join(map(str, report.border))}-pixel border on every side: centre-cropped to the "
                            f"input size, as FFA-Net's loader does ({where}.crop_gt_border=false turns this off)"))
    if report.grey:
        notes.append((INFO, f"{where}: {report.grey} grey images, expanded to RGB"))
    return notes


def prepare(cfg, splits):
    """{split: dataset or None} and the notes to log, for the given data sections of a config.
    With both 'train' and 'val': DataError when they share target images; a note when validation
    runs on a test set (checkpoints are then not selected on it unless train.select_on_test)."""
    sets, notes = {}, []
    for split in splits:
        sets[split] = None
        if cfg["data"].get(split) is not None:
            sets[split], more = build_checked(cfg, split)
            notes += more
    train, val = sets.get("train"), sets.get("val")
    if isinstance(train, PairedDataset) and isinstance(val, PairedDataset):
        shared = shared_images(train.targets(), val.targets())  # by content: copies and links count
        if shared:
            raise DataError(f"data.val shares {len(shared)} target images with data.train (e.g. {shown(shared[0][1])} "
                            f"is {shown(shared[0][0])}); a validation split must not overlap training: give both "
                            f"sections the same holdout, with take: holdout in data.val")
    if val is not None and describe(val)["test_set"]:
        kept = "kept, and marked as selected on a test set" if cfg["train"]["select_on_test"] else \
            "not kept (train.select_on_test: true keeps it, marked)"
        notes.append((WARNING, f"data.val is a test set ({val.benchmark or val.split}): validation scores are logged "
                               f"for monitoring only; best.pth is {kept}. Report the final checkpoint, or validate on "
                               f"a held-out split of the training set (holdout / take: holdout)"))
    return sets, notes
