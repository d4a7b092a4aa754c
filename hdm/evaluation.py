"""Evaluation: a model over a dataset, whole images, one row of scores per image (test.py, validation
during training, the sweep and the demo all go through `evaluate`)."""
import os

import numpy as np
import torch

from hdm.errors import NonFiniteOutput, shown
from hdm.image_io import write_image
from hdm.inference import clamp_finite
from hdm.outputs import unique_stems


class Interrupted(Exception):
    """evaluate() was asked to stop (a signal during validation)."""


@torch.no_grad()
def evaluate(model, dataset, metric, device, save_dir=None, num_examples=0, stop=None):
    """Whole-image evaluation, batch size 1. Returns (rows, examples): one row per image, {'name',
    <metric>: value, ..., 'input_<metric>': value, ...} (input_*: the degraded input scored the same
    way), and (lq, out, gt) CPU tensors (3, H, W) of the first `num_examples` images (gt None when
    absent) for figures. Samples without 'gt' (unpaired folders) are scored with gt=None, which only
    no-reference presets accept. stop: a callable checked before each image (Interrupted when true).
    Rows and saved images are named by the inputs' stems, made unique (hdm.outputs.unique_stems). An
    image whose output is NaN or infinite is never scored: the others go on, then NonFiniteOutput names
    them."""
    model.eval()
    rows, examples, failed = [], [], []
    names = unique_stems([s[0] for s in dataset.samples]) if hasattr(dataset, "samples") else {}
    for i in range(len(dataset)):
        if stop is not None and stop():
            raise Interrupted
        sample = dataset[i]
        name = shown(names.get(sample["lq_path"]) or os.path.splitext(os.path.basename(sample["lq_path"]))[0])
        lq = sample["lq"].unsqueeze(0).to(device)
        gt = sample["gt"].unsqueeze(0).to(device) if "gt" in sample else None
        try:
            out = clamp_finite(model(lq, **_extras(model, sample, device)))
        except NonFiniteOutput:
            failed.append(shown(sample["lq_path"]))
            continue
        try:
            scores, baseline = metric(out, gt, lq=lq), metric(lq, gt, lq=lq)
        except ValueError as err:  # a preset that cannot score this image: say which
            raise ValueError(f"{shown(sample['lq_path'])}: {err}") from err
        rows.append({"name": name, **{k: float(v[0]) for k, v in scores.items()},
                     **{f"input_{k}": float(v[0]) for k, v in baseline.items()}})
        if save_dir is not None:
            write_image(os.path.join(save_dir, name + ".png"), out[0].permute(1, 2, 0))
        if i < num_examples:
            examples.append((sample["lq"], out[0].float().cpu(), sample.get("gt")))
    if failed:
        raise NonFiniteOutput(f"{len(failed)} of {len(dataset)} images gave NaN or infinite outputs ({', '.join(failed[:3])}"
                              f"{', ...' if len(failed) > 3 else ''})")
    return rows, examples


def _extras(model, sample, device):
    """The extra inputs a model names (`model.extra_inputs`) from one sample, batched."""
    missing = [key for key in model.extra_inputs if key not in sample]
    if missing:
        raise ValueError(f"{sample['lq_path']}: the model needs {missing} but the dataset does not supply it")
    return {key: sample[key].unsqueeze(0).to(device) for key in model.extra_inputs}


def summarize(rows):
    """Mean of every numeric column."""
    keys = [k for k in rows[0] if k != "name"]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def test_split(cfg):
    """The data section test.py scores: data.test, or data.val when the config has no test set."""
    return "test" if cfg["data"]["test"] is not None else "val"
