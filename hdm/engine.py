"""Training. Read `train_step` first: it is the whole optimisation step; `fit` is the loop around it,
beside the functions that build what it trains, resume it, save and validate (the run folder is
opened and closed by hdm/run_folder.py, evaluation is hdm/evaluation.py, training then testing one
config for sweeps and the demo is hdm/pipeline.py).

    train.py -> fit() -> train_step() -> model.forward / losses
    test.py  -> hdm.evaluation.evaluate() -> model.forward / metrics
"""
import logging
import math
import os
import signal
import sys
import time
import traceback

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from hdm.checkpoint import (
    atomic_save,
    checkpoint_path,
    latest_readable_checkpoint,
    load_checkpoint,
    prune_checkpoints,
)
from hdm.data.prepare import describe, target_digests
from hdm.data.sampler import EpochSampler, SeededSamples
from hdm.device import autocast, memory_format
from hdm.errors import NonFiniteOutput, shown
from hdm.evaluation import Interrupted, evaluate, summarize
from hdm.losses import WeightedLosses
from hdm.metrics import get_metric
from hdm.models import build_model, count_parameters
from hdm.optim import build_optimizer, build_scheduler
from hdm.run_folder import close_run, open_run
from hdm.runtime import all_ranks_agree, peer_lost, seed_everything
from hdm.train_state import EMA, TrainState

logger = logging.getLogger("hdm")


class TrainingStopped(RuntimeError):
    """Training ended early for a reason stated in one line (train.py prints it and exits with 1)."""


class StoppedBySignal(Exception):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint: the run is not finished, so the
    tool exits with 128 + the signal's number (130, 143), as a shell reports a process a signal ended,
    never 0. A scheduler sees an unfinished job; --resume auto continues it."""

    def __init__(self, message, signame):
        super().__init__(message)
        self.exit_code = 128 + signal.Signals[signame].value


# ----------------------------------------------------------------------------- the step


def _inputs(net, batch, device):
    lq = batch["lq"].to(device, non_blocking=True)
    gt = batch["gt"].to(device, non_blocking=True)
    extras = {key: batch[key].to(device, non_blocking=True) for key in net.extra_inputs}  # e.g. 'trans'
    return lq, gt, extras


def _backward_and_step(state, loss, optimizer):
    if state.scaler is None:
        loss.backward()
        optimizer.step()
    else:  # fp16: scaled gradients, unscaled before the step (one scaler, updated once per iteration)
        state.scaler.scale(loss).backward()
        state.scaler.step(optimizer)


def train_step(state, net, batch, losses, device, amp="off"):
    """One optimisation step on one batch. net: state.model, or its DDP wrapper. amp: 'off', 'bf16' or
    'fp16' (autocast; fp16 scales the loss with state.scaler). Returns {'loss': total, <term>: weighted
    value} as floats, or {'loss': nan, 'nonfinite': 1} when the loss is not finite (nothing applied)."""
    lq, gt, extras = _inputs(net, batch, device)
    with autocast(device, amp):
        out = net(lq, **extras)  # HDM computes its DCP region masks from lq inside forward (in fp32)
    total, terms = losses(out.float(), gt, lq)
    if not all_ranks_agree(torch.isfinite(total).item()):  # not applied; fit() counts, logs, stops if repeated
        return {"loss": float("nan"), "nonfinite": 1.0}
    state.optimizer.zero_grad(set_to_none=True)
    _backward_and_step(state, total, state.optimizer)
    if state.scaler is not None:
        state.scaler.update()
    state.scheduler.step()  # per-iteration schedule
    return {"loss": total.item(), **{name: value.item() for name, value in terms.items()}}


def gan_train_step(state, net, d_net, batch, losses, adv_weight, device, amp="off"):
    """One adversarial step (Ren et al. TIP 2019, eqs. 6-7): the generator, then the discriminator,
    both under the same autocast as train_step. Returns the generator's terms, 'adversarial', and
    'discriminator' (the discriminator's loss)."""
    lq, gt, extras = _inputs(net, batch, device)
    with autocast(device, amp):
        out = net(lq, **extras)
    # 1. generator: content losses + adv_weight * -log D(G(lq)) (non-saturating form)
    state.disc.requires_grad_(False)
    total, terms = losses(out.float(), gt, lq)
    with autocast(device, amp):
        fake = d_net(out)
    terms["adversarial"] = adv_weight * F.binary_cross_entropy_with_logits(fake.float(), torch.ones_like(fake.float()))
    total = total + terms["adversarial"]
    if not all_ranks_agree(torch.isfinite(total).item()):
        state.disc.requires_grad_(True)
        return {"loss": float("nan"), "nonfinite": 1.0}
    state.optimizer.zero_grad(set_to_none=True)
    _backward_and_step(state, total, state.optimizer)
    state.scheduler.step()
    # 2. discriminator: targets real, restored images fake
    state.disc.requires_grad_(True)
    with autocast(device, amp):
        real, fake = d_net(gt), d_net(out.detach())
    real, fake = real.float(), fake.float()
    d_loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
              + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    state.d_optimizer.zero_grad(set_to_none=True)
    _backward_and_step(state, d_loss, state.d_optimizer)
    if state.scaler is not None:
        state.scaler.update()
    state.d_scheduler.step()
    return {"loss": total.item(), **{k: v.item() for k, v in terms.items()}, "discriminator": d_loss.item()}


# ----------------------------------------------------------------------------- training loop


def fit(cfg, resume=None, overwrite=False):
    """Train as the config says. resume: None, 'auto' (the newest readable checkpoint of the run, or a
    start when it has none) or a checkpoint path; overwrite: move a finished or stopped run with the
    same name aside first. Returns the run folder."""
    run = open_run(cfg, resume, overwrite)  # data checked, folder locked, config recorded: or one line
    net = d_net = None
    try:
        state, net, d_net, losses = build_training(cfg, run)
        resume_training(state, cfg, run)
        tcfg, gan = cfg["train"], cfg["adversarial"]
        loader = build_loader(cfg, run, state.sampler)
        batches, nonfinite = iter(loader), 0
        while state.iteration < tcfg["iterations"] and all_ranks_agree(run.stop.signal is None):
            try:
                batch = next(batches)
            except StopIteration:  # end of epoch: next permutation
                state.sampler.epoch, state.sampler.offset = state.sampler.epoch + 1, 0
                batches = iter(loader)
                continue
            except (OSError, ValueError) as err:  # a bad file met mid-epoch: one line, not a traceback
                raise TrainingStopped(f"{str(err).strip().splitlines()[-1]} (at iteration {state.iteration + 1}; "
                                      f"the last good checkpoint is {last_good_checkpoint(run, state)})") from err
            state.model.train()
            if gan is None:
                logs = train_step(state, net, batch, losses, run.device, run.amp)
            else:
                logs = gan_train_step(state, net, d_net, batch, losses, gan["weight"], run.device, run.amp)
            state.sampler.offset += tcfg["batch_size"] * run.world
            if "nonfinite" in logs:
                nonfinite += 1
                logger.warning("iteration %d: non-finite loss, step not applied (%d in a row); batch: %s",
                               state.iteration + 1, nonfinite, ", ".join(map(shown, batch["lq_path"])))
                if nonfinite >= tcfg["max_nonfinite"]:
                    raise TrainingStopped(f"{nonfinite} non-finite losses in a row at iteration {state.iteration + 1}: "
                                          f"training stopped; the last good checkpoint is "
                                          f"{last_good_checkpoint(run, state)}")
                continue
            nonfinite, state.iteration = 0, state.iteration + 1
            if state.ema is not None:
                state.ema.update(state.model)
            if not run.main:
                continue
            log_step(run, state, logs)
            if _due(state.iteration, tcfg["save_every"], tcfg["iterations"]):
                save_checkpoint(run, state)  # before validation: a failing validation loses no training
            if run.sets["val"] is not None and _due(state.iteration, tcfg["val_every"], tcfg["iterations"]):
                validate_and_select(run, state)
        stopped = state.iteration < tcfg["iterations"]  # by a signal, on this or another rank
        if stopped and run.main:
            save_checkpoint(run, state)
            logger.info("stopped by %s at iteration %d; checkpoint saved; continue with --resume auto",
                        run.stop.signal or "a signal on another process", state.iteration)
        all_ranks_agree(True)  # a barrier: no process tears down while another still works (rank 0 saving)
    except RuntimeError as err:
        if not peer_lost(err):
            raise
        traceback.clear_frames(err.__traceback__)  # their locals (DDP) would keep the process group alive
        newest = latest_readable_checkpoint(run.ckpt_dir)[0] or "none"
        raise TrainingStopped(f"process {run.rank} of {run.world} lost its connection to another training process "
                              f"(ended or killed); the newest checkpoint is {newest}; continue with --resume auto") from err
    finally:
        net = d_net = None  # DDP holds the process group: released before close_run destroys it
        close_run(run)
    if stopped:
        raise StoppedBySignal(f"stopped by {run.stop.signal or 'a signal on another process'} at iteration "
                              f"{state.iteration}; {'checkpoint saved; ' if run.main else ''}continue with --resume "
                              f"auto", run.stop.signal or "SIGTERM")
    return run.dir


def _due(iteration, every, last):
    return iteration % every == 0 or iteration == last


def build_training(cfg, run):
    """(state, net, d_net, losses): the TrainState on the run's device, the model as trained (DDP-wrapped
    under torchrun) and the discriminator likewise (None without one), the weighted losses."""
    tcfg, gan = cfg["train"], cfg["adversarial"]
    seed_everything(cfg["seed"])
    device = run.device
    model = build_model(cfg["model"]).to(device, memory_format=memory_format(tcfg["memory_format"], device))
    optimizer = build_optimizer(cfg["optim"], model.parameters())
    disc = build_model(gan["discriminator"]).to(device) if gan else None
    d_optimizer = build_optimizer(gan["optim"], disc.parameters()) if gan else None
    state = TrainState(
        model, optimizer, build_scheduler(cfg["schedule"], optimizer, tcfg["iterations"]),
        EpochSampler(len(run.sets["train"]), cfg["seed"], tcfg["batch_size"], run.rank, run.world),
        scaler=torch.amp.GradScaler(device.type) if tcfg["amp"] == "fp16" else None,
        disc=disc, d_optimizer=d_optimizer,
        d_scheduler=build_scheduler(cfg["schedule"], d_optimizer, tcfg["iterations"]) if gan else None,
        ema=EMA(model, tcfg["ema_decay"]) if tcfg["ema_decay"] else None)
    net, d_net = model, disc
    if run.world > 1:
        ids = [run.local_rank] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=tcfg["find_unused_parameters"])
        net.extra_inputs = model.extra_inputs
        d_net = DistributedDataParallel(disc, device_ids=ids) if gan else None
    return state, net, d_net, WeightedLosses(cfg["losses"]).to(device)


def resume_training(state, cfg, run):
    """Load the resume checkpoint found by open_run into the state (a longer run extends its cosine)."""
    path, ckpt = run.resume_from
    tcfg = cfg["train"]
    if path is not None:
        try:
            state.load_state_dict(ckpt)
        except (KeyError, RuntimeError) as err:
            raise TrainingStopped(f"--resume {path}: {str(err).splitlines()[0]}") from err
        state.extend_schedule(tcfg["iterations"])
        best = os.path.join(run.ckpt_dir, "best.pth")
        if os.path.isfile(best):  # written after its iteration's checkpoint: it, not the checkpoint, has the best
            record = load_checkpoint(best)
            state.best = {"psnr": record["val"]["psnr"], "iteration": record["iteration"]}
        logger.info("resumed from %s at iteration %d (lr %.3g)", path, state.iteration,
                    state.optimizer.param_groups[0]["lr"])
    logger.info("model %s: %d parameters; %d training samples; batch %d per process x %d process(es) = %d global; "
                "%d iterations; device %s; amp %s%s", cfg["model"]["type"], count_parameters(state.model),
                len(run.sets["train"]), tcfg["batch_size"], run.world, tcfg["batch_size"] * run.world,
                tcfg["iterations"], run.device, run.amp, f"; EMA {tcfg['ema_decay']}" if state.ema else "")
    if run.main:
        from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only training needs it

        run.writer = SummaryWriter(os.path.join(run.dir, "tb"))
        run.bar = _progress(state.iteration, tcfg["iterations"])
        run.clock = [time.time(), state.iteration]


def build_loader(cfg, run, sampler):
    # samples are made under their own seed (SeededSamples); the loader's own generator leaves the global RNG alone
    return DataLoader(SeededSamples(run.sets["train"], cfg["seed"]), batch_size=cfg["train"]["batch_size"],
                      sampler=sampler, drop_last=True, num_workers=cfg["train"]["num_workers"],
                      pin_memory=run.device.type == "cuda", generator=torch.Generator().manual_seed(cfg["seed"]))


def log_step(run, state, logs):
    tcfg = run.cfg["train"]
    lr = state.optimizer.param_groups[0]["lr"]
    for key, value in logs.items():
        run.writer.add_scalar(f"train/{key}", value, state.iteration)
    run.writer.add_scalar("train/lr", lr, state.iteration)
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix(loss=f"{logs['loss']:.4f}")
    elif _due(state.iteration, tcfg["log_every"], tcfg["iterations"]):
        rate = (state.iteration - run.clock[1]) / max(time.time() - run.clock[0], 1e-9)
        logger.info("iter %d/%d loss %.4f lr %.3g (%.2f it/s)", state.iteration, tcfg["iterations"], logs["loss"], lr,
                    rate)
        run.clock = [time.time(), state.iteration]


def save_checkpoint(run, state):
    """iter_<n>.pth: the TrainState, the config, how it was chosen, the data it read; the newest keep_last
    are kept, and the last good one. Non-finite weights are never saved."""
    if not state.weights_finite():
        raise TrainingStopped(f"the weights became non-finite by iteration {state.iteration}: not saved; the last "
                              f"good checkpoint is {last_good_checkpoint(run, state)}")
    tcfg = run.cfg["train"]
    data = {split: describe(ds) if ds is not None else None for split, ds in run.sets.items()}
    selection = {"by": "iteration", "iteration": state.iteration, "final": state.iteration == tcfg["iterations"],
                 "val_set": data["val"]}
    path = checkpoint_path(run.ckpt_dir, state.iteration)
    ran = {"amp": run.amp, "device": str(run.device), "processes": run.world}  # what ran (train.amp may fall back)
    atomic_save({**state.state_dict(), "config": run.cfg, "selection": selection, "data": data, "ran": ran}, path)
    logger.info("saved %s", path)
    prune_checkpoints(run.ckpt_dir, tcfg["keep_last"], protect=(state.last_good,))


def validate_and_select(run, state):
    """Validate the evaluation weights (EMA when on); best.pth moves only to a higher finite score, and
    only when the validation set is not a test set (or train.select_on_test). Non-finite outputs stop
    training; SIGTERM during validation abandons it within one image."""
    val_set, info = run.sets["val"], describe(run.sets["val"])
    mean = _validate(run, state, val_set)
    if mean is None:  # interrupted by a signal: the loop saves and exits
        return
    if any(math.isnan(v) for v in mean.values()):  # NaN outputs (an infinite PSNR is a perfect image)
        raise TrainingStopped(f"validation at iteration {state.iteration} gave non-finite outputs: the weights are "
                              f"broken; training stopped; the last good checkpoint is {last_good_checkpoint(run, state)}")
    if os.path.isfile(checkpoint_path(run.ckpt_dir, state.iteration)):
        state.last_good = state.iteration
    keep = not info["test_set"] or run.cfg["train"]["select_on_test"]
    if keep and "psnr" in mean and (state.best is None or mean["psnr"] > state.best["psnr"]):
        state.best = {"psnr": mean["psnr"], "iteration": state.iteration}
        selection = {"by": "best validation psnr", "iteration": state.iteration, "psnr": mean["psnr"],
                     "val_set": info, "on_test_set": info["test_set"], "target_digests": target_digests(val_set)}
        atomic_save({"model": state.eval_model.state_dict(), "iteration": state.iteration, "val": mean,
                     "config": run.cfg, "selection": selection, "ema_weights": state.ema is not None},
                    os.path.join(run.ckpt_dir, "best.pth"))


def last_good_checkpoint(run, state):
    """The newest checkpoint whose weights are finite and, with a validation set, whose validation
    outputs were finite; 'none' when there is none."""
    if run.sets["val"] is not None:
        path = checkpoint_path(run.ckpt_dir, state.last_good) if state.last_good else None
        return path if path and os.path.isfile(path) else "none"
    return latest_readable_checkpoint(run.ckpt_dir)[0] or "none"


def _progress(initial, total):
    if not sys.stderr.isatty():
        return None  # one log line per train.log_every iterations instead
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, dynamic_ncols=True)


def _validate(run, state, val_set):
    """Mean scores of the evaluation weights on the validation set, logged; None when a signal came."""
    cfg, model = run.cfg, state.eval_model
    metric = get_metric(cfg["eval"]["preset"], **cfg["eval"]["options"])
    try:
        rows, examples = evaluate(model, val_set, metric, run.device, num_examples=cfg["train"]["num_val_images"],
                                  stop=lambda: run.stop.signal is not None)
    except Interrupted:
        logger.info("validation at iteration %d abandoned (%s)", state.iteration, run.stop.signal)
        return None
    except NonFiniteOutput as err:
        raise TrainingStopped(f"validation at iteration {state.iteration} gave non-finite outputs ({err}): the weights "
                              f"are broken; training stopped; the last good checkpoint is "
                              f"{last_good_checkpoint(run, state)}") from err
    finally:
        state.model.train()
    mean = summarize(rows)
    for key, value in mean.items():
        run.writer.add_scalar(f"val/{key}", value, state.iteration)
    for row, triplet in zip(rows, examples):
        run.writer.add_image(f"val/{row['name']}", torch.cat([t for t in triplet if t is not None], dim=2),
                             state.iteration)
    logger.info("val iter %d: %s", state.iteration, ", ".join(f"{k} {v:.4g}" for k, v in mean.items()))
    return mean
