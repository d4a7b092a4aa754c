"""One config trained, then scored on its test split, as the sweep and the demo run it: `train_and_evaluate`,
and `check_train_and_evaluate`, which finds before the first run whatever it would refuse."""
import os
import time

import torch

from hdm.config import check_training
from hdm.data import build_dataset
from hdm.data.prepare import check_scored, prepare, read_checked
from hdm.device import resolve_device
from hdm.engine import fit
from hdm.errors import ConfigError
from hdm.evaluation import evaluate, test_split
from hdm.inference import load_model
from hdm.metrics import SCORES, get_metric
from hdm.models import build_model, count_parameters
from hdm.run_folder import check_place
from hdm.runtime import run_dir_of


def check_train_and_evaluate(cfg, test_cfg=None, scores=(), cache=None):
    """Everything train_and_evaluate(cfg, test_cfg=test_cfg) would refuse, found before it starts (the
    sweep and the demo check every config before their first run): for a model with parameters, the
    training checks (check_training, data.train and data.val fitted to the config as open_run fits
    them, a run folder that can be one: check_place); the scored split read and fit for the preset
    (targets, least size, the maps the model reads); the preset giving the `scores` a table needs.
    cache: hdm.data.prepare.read_checked's."""
    test_cfg = test_cfg or cfg
    preset = test_cfg["eval"]["preset"]
    missing = [name for name in scores if name not in SCORES[preset]]
    if missing:
        raise ConfigError(f"eval.preset: {preset} gives {', '.join(SCORES[preset])}; this table needs "
                          f"{' and '.join(scores)} (a preset such as ffa_rgb, matlab_y_uint8, basicsr or lol_rgb)")
    with torch.device("meta"):
        trains = count_parameters(build_model(cfg["model"])) > 0
    if trains:
        check_training(cfg)
        check_place(run_dir_of(cfg), prepare(cfg, ("train", "val"), cache)[0])
    split = test_split(test_cfg)
    dataset, report, _ = read_checked(test_cfg, split, cache)
    check_scored(test_cfg, split, dataset, report, {preset: test_cfg["eval"]["options"]})


def train_and_evaluate(cfg, resume="auto", save_dir=None, test_cfg=None):
    """Train as the config says (continuing an interrupted run, doing nothing for a finished one;
    parameter-free models such as DCP are only tested), then evaluate the final weights on the test
    split (test_split) of test_cfg (default: cfg; the sweep trains without validating the set it tests).
    Returns (model, rows, training seconds, test seconds)."""
    test_cfg = test_cfg or cfg
    t0 = time.time()
    weights = None
    if count_parameters(build_model(cfg["model"])):
        fit(cfg, resume=resume)
        weights = os.path.join(run_dir_of(cfg), "checkpoints", f"iter_{cfg['train']['iterations']}.pth")
    train_s = time.time() - t0
    device = resolve_device(cfg["device"])
    model = load_model(cfg["model"], weights, device)
    t0 = time.time()
    with torch.inference_mode():
        rows, _ = evaluate(model, build_dataset(test_cfg["data"][test_split(test_cfg)]),
                           get_metric(test_cfg["eval"]["preset"], **test_cfg["eval"]["options"]), device,
                           save_dir=save_dir)
    return model, rows, train_s, time.time() - t0
