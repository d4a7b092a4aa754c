"""Datasets of a config, built and checked before any work: every pair's headers (readable, sizes
paired after the border rule), counts against the distributed sizes, validation splits that neither
overlap training nor are a test set without saying so, and what the config asks of the images (crops
that fit, inputs the discriminator takes, batches of one size, targets and transmission maps)."""
import json
import logging
import os
import time

from hdm.errors import DataError, shown
from hdm.identity import content_digest, shared_images
from hdm.kinds import keyed

from . import DATASETS, benchmarks, build_dataset
from .paired import PairedDataset

WARNING, INFO = logging.WARNING, logging.INFO


def _last_line(err):
    return str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__


def read_checked(cfg, split, cache=None):
    """(dataset, its CheckReport or None for a reader that is not a PairedDataset, notes) for data.<split>:
    built, every sample checked from its headers; notes are (logging level, line) pairs to log. DataError
    on the first problem. cache: a dict keeping each data section's read for the other configs that name
    the same section (a sweep's variants)."""
    key = json.dumps(cfg["data"][split], sort_keys=True, default=str)
    if cache is not None and key in cache:
        return cache[key]
    where = f"data.{split}"
    try:
        dataset = build_dataset(cfg["data"][split])
        if not isinstance(dataset, PairedDataset):  # a reader registered by the user
            read = dataset, None, [(INFO, f"{where}: {type(dataset).__name__}: {len(dataset)} samples (not checked)")]
        else:
            start = time.perf_counter()
            report = dataset.check()
            read = dataset, report, report_notes(where, dataset, report, time.perf_counter() - start)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise DataError(keyed(where, _last_line(err), DATASETS[cfg["data"][split]["type"]])) from err
    if cache is not None:
        cache[key] = read
    return read


def _model_class(section):
    from hdm.models import MODELS  # here: the models import torch's layers, which reading data does not need

    return MODELS[section["type"]]


def _model_reads(section):
    """What the configured model reads besides the image (its extra_inputs), built on the meta device."""
    import torch

    from hdm.models import build_model

    with torch.device("meta"):
        return build_model(section).extra_inputs


def _inputs(cfg, split, report):
    """(side, what) of the smallest input the model meets in data.<split>: its crop, else the smallest image."""
    crop = cfg["data"][split].get("crop")
    if crop:
        return crop, f"data.{split}.crop is {crop}"
    h, w, path = report.smallest
    return min(h, w), f"the smallest image of data.{split} is {h}x{w} ({shown(path)})"


def check_fit(cfg, split, dataset, report, model_reads=()):
    """DataError when what the config asks of data.<split> does not fit its images: a crop larger than
    the smallest image, a model or discriminator (MIN_INPUT_SIDE) that takes larger inputs, images of
    several sizes batched without a crop, pairs without targets, or a model that reads transmission
    maps the set does not have (model_reads: the model's extra_inputs)."""
    section, where = cfg["data"][split], f"data.{split}"
    if report.smallest is None:  # no samples: nothing to fit
        return
    h, w, path = report.smallest
    if section.get("crop") and section["crop"] > min(h, w):
        raise DataError(f"{where}.crop: {section['crop']} is larger than the smallest image of the set "
                        f"({h}x{w}, {shown(path)})")
    models = [("model", cfg["model"])]
    if split == "train" and cfg["adversarial"]:
        models.append(("adversarial.discriminator", cfg["adversarial"]["discriminator"]))
    for key, model in models:
        need = getattr(_model_class(model), "MIN_INPUT_SIDE", 1)
        side, what = _inputs(cfg, split, report)
        if side < need:
            raise DataError(f"{key}: {model['type']} takes inputs of at least {need} x {need}, but {what}: set "
                            f"{where}.crop to {need} or more")
    if split == "train" and not section.get("crop") and cfg["train"]["batch_size"] > 1 and len(report.sizes) > 1:
        (a, _), (b, _) = report.sizes.most_common(2)
        raise DataError(f"{where}: images of {len(report.sizes)} sizes (e.g. {a[0]}x{a[1]} and {b[0]}x{b[1]}) cannot "
                        f"be batched: set {where}.crop, or train.batch_size=1")
    if any(gt is None for _, gt, _ in dataset.samples):
        raise DataError(f"{where}: {section['type']} has no targets; training and validation need pairs")
    if split == "val":  # scored during training: its preset's needs, the maps included
        check_scored(cfg, split, dataset, report, {cfg["eval"]["preset"]: cfg["eval"]["options"]})
    else:
        check_maps(cfg, split, dataset, model_reads)


def check_maps(cfg, split, dataset, model_reads):
    """DataError when the model reads transmission maps (model_reads: its extra_inputs) that data.<split>
    does not give for every sample."""
    if "trans" in model_reads and any(trans is None for _, _, trans in dataset.samples):
        raise DataError(f"data.{split}: the model reads transmission maps (model.region: depth), which "
                        f"{cfg['data'][split]['type']} does not give here (PairedFolder: trans_dir; RESIDE: trans: true)")


def check_scored(cfg, split, dataset, report, presets):
    """DataError when data.<split> cannot be scored by a preset of `presets` ({preset: options}): samples
    without targets for a preset that needs them, or images (its crop, else its smallest image) smaller
    than the preset scores (hdm.metrics.least_side), or without the maps the model reads (check_maps)."""
    from hdm.metrics import NO_REFERENCE, least_side

    if report is None or report.smallest is None:  # a reader of the user's (not checked), or no samples
        return
    check_maps(cfg, split, dataset, _model_reads(cfg["model"]))
    needs_targets = sorted(set(presets) - NO_REFERENCE)
    if needs_targets and any(gt is None for _, gt, _ in dataset.samples):
        raise DataError(f"data.{split}: {cfg['data'][split]['type']} has no targets, which preset {needs_targets[0]} "
                        f"needs: use a no-reference preset ({', '.join(sorted(NO_REFERENCE))})")
    side, what = _inputs(cfg, split, report)
    for preset, options in presets.items():
        need = least_side(preset, options)
        if side < need:
            border = f" (with crop_border {options['crop_border']})" if options.get("crop_border") else ""
            raise DataError(f"data.{split}: metric preset {preset}{border} scores images of at least {need} x {need} "
                            f"pixels, but {what}")


def data_folders(datasets):
    """The folders the images of `datasets` (PairedDatasets; None and others are skipped) lie in, sorted."""
    return sorted({os.path.dirname(os.path.abspath(f)) for dataset in datasets if isinstance(dataset, PairedDataset)
                   for sample in dataset.samples for f in sample if f})


def describe(dataset):
    """PairedDataset.describe(), or the little that is known of a user's own reader."""
    if isinstance(dataset, PairedDataset):
        return dataset.describe()
    return {"type": type(dataset).__name__, "root": "", "benchmark": None, "version": "", "split": None, "holdout": 0,
            "take": "rest", "samples": len(dataset), "test_set": False, "fingerprint": None}


def target_digests(dataset):
    """Sorted SHA-256 of the target files of a set (its inputs where it has none): what a checkpoint
    records of the images it was selected on, so a test set can be compared with them by content."""
    files = dataset.targets() if isinstance(dataset, PairedDataset) else []
    return sorted({content_digest(path) for path in files})


def report_notes(where, dataset, report, seconds):
    """(logging level, line) pairs saying what a dataset read and what its check found: the version,
    the counts against the distributed size (a warning when they differ), border-cropped targets."""
    info = dataset.describe()
    root = ", ".join(map(shown, [info["root"]] if isinstance(info["root"], str) else info["root"]))
    notes = [(INFO, f"{where}: {info['type']} at {root} ({info['version']}): {len(dataset)} samples"
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


def prepare(cfg, splits, cache=None):
    """{split: dataset or None} and the notes to log, for the given data sections of a training config
    (each fits the config: check_fit; cache: read_checked's). With both 'train' and 'val': DataError when they share target
    images; a note when validation runs on a test set (checkpoints are then not selected on it unless
    train.select_on_test)."""
    sets, notes, reads = {}, [], _model_reads(cfg["model"])
    for split in splits:
        sets[split] = None
        if cfg["data"].get(split) is not None:
            sets[split], report, more = read_checked(cfg, split, cache)
            if report is not None:
                check_fit(cfg, split, sets[split], report, reads)
            notes += more
    train, val = sets.get("train"), sets.get("val")
    if isinstance(train, PairedDataset) and isinstance(val, PairedDataset):
        # by content (copies and links count), targets and inputs alike
        shared = shared_images(train.targets(), val.targets()) or shared_images(train.inputs(), val.inputs())
        if shared:
            raise DataError(f"data.val shares {len(shared)} images with data.train (e.g. {shown(shared[0][1])} "
                            f"is {shown(shared[0][0])}); a validation split must not overlap training: give both "
                            f"sections the same holdout, with take: holdout in data.val")
    if val is not None and describe(val)["test_set"]:
        kept = "kept, and marked as selected on a test set" if cfg["train"]["select_on_test"] else \
            "not kept (train.select_on_test: true keeps it, marked)"
        notes.append((WARNING, f"data.val is a test set ({val.benchmark or val.split}): validation scores are logged "
                               f"for monitoring only; best.pth is {kept}. Report the final checkpoint, or validate on "
                               f"a held-out split of the training set (holdout / take: holdout)"))
    return sets, notes
