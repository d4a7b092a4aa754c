"""Training and evaluation. Read `train_step` first: it is the whole optimisation step.

    train.py -> fit() -> train_step() -> model.forward / losses
    test.py  -> evaluate() -> model.forward / metrics
"""
import logging
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from hdm.checkpoint import atomic_save, latest_readable_checkpoint, load_checkpoint, prune_checkpoints
from hdm.config import dump_config
from hdm.data import build_dataset
from hdm.data.prepare import DataError, describe, prepare
from hdm.data.io import write_image
from hdm.losses import WeightedLosses
from hdm.inference import autocast, load_model
from hdm.metrics import get_metric
from hdm.models import build_model, count_parameters
from hdm.runtime import (EpochSampler, SeededSamples, StopRequest, all_ranks_agree, build_optimizer, build_scheduler,
                         distributed_setup, memory_format, resolve_device, rng_state, run_dir_of, seed_everything,
                         set_rng_state, setup_logging)

logger = logging.getLogger("hdm")


# ----------------------------------------------------------------------------- the step


def train_step(model, batch, losses, optimizer, scheduler, device, amp="off", scaler=None):
    """One optimisation step on one batch. Returns {'loss': total, <term>: weighted value} as floats.
    amp: 'off', 'bf16' or 'fp16' (autocast); scaler: a GradScaler for fp16."""
    lq = batch["lq"].to(device, non_blocking=True)
    gt = batch["gt"].to(device, non_blocking=True)
    extras = {key: batch[key].to(device, non_blocking=True) for key in model.extra_inputs}  # e.g. 'trans'
    with autocast(device, amp):
        out = model(lq, **extras)  # HDM computes its DCP region masks from lq inside forward (in fp32)
    total, terms = losses(out.float(), gt, lq)
    if not all_ranks_agree(torch.isfinite(total).item()):  # not applied; fit() counts, logs, stops if repeated
        return {"loss": float("nan"), "nonfinite": 1.0}
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        total.backward()
        optimizer.step()
    else:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    scheduler.step()  # per-iteration schedule
    return {"loss": total.item(), **{name: value.item() for name, value in terms.items()}}


def gan_train_step(model, disc, batch, losses, optimizer, d_optimizer, scheduler, d_scheduler, adv_weight, device):
    """One adversarial step (Ren et al. TIP 2019, eqs. 6-7): the generator, then the discriminator.
    Returns the generator's terms, 'adversarial', and 'discriminator' (the discriminator's loss)."""
    lq = batch["lq"].to(device, non_blocking=True)
    gt = batch["gt"].to(device, non_blocking=True)
    out = model(lq, **{key: batch[key].to(device, non_blocking=True) for key in model.extra_inputs})
    # 1. generator: content losses + adv_weight * -log D(G(lq)) (non-saturating form)
    disc.requires_grad_(False)
    total, terms = losses(out, gt, lq)
    fake = disc(out)
    terms["adversarial"] = adv_weight * F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    total = total + terms["adversarial"]
    if not all_ranks_agree(torch.isfinite(total).item()):
        disc.requires_grad_(True)
        return {"loss": float("nan"), "nonfinite": 1.0}
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    scheduler.step()
    # 2. discriminator: targets real, restored images fake
    disc.requires_grad_(True)
    real, fake = disc(gt), disc(out.detach())
    d_loss = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
              + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    d_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    d_optimizer.step()
    d_scheduler.step()
    return {"loss": total.item(), **{k: v.item() for k, v in terms.items()}, "discriminator": d_loss.item()}


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, dataset, metric, device, save_dir=None, num_examples=0):
    """Whole-image evaluation, batch size 1. Returns (rows, examples): one row per image, {'name',
    <metric>: value, ..., 'input_<metric>': value, ...} (input_*: the degraded input scored the same
    way), and (lq, out, gt) CPU tensors (3, H, W) of the first `num_examples` images (gt None when
    absent) for figures. Samples without 'gt' (unpaired folders) are scored with gt=None, which only
    no-reference presets accept."""
    model.eval()
    rows, examples = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        lq = sample["lq"].unsqueeze(0).to(device)
        gt = sample["gt"].unsqueeze(0).to(device) if "gt" in sample else None
        out = model(lq, **_extras(model, sample, device)).clamp(0, 1)
        scores, baseline = metric(out, gt), metric(lq, gt)
        name = os.path.splitext(os.path.basename(sample["lq_path"]))[0]
        rows.append({"name": name, **{k: float(v[0]) for k, v in scores.items()},
                     **{f"input_{k}": float(v[0]) for k, v in baseline.items()}})
        if save_dir is not None:
            write_image(os.path.join(save_dir, name + ".png"), out[0].permute(1, 2, 0))
        if i < num_examples:
            examples.append((sample["lq"], out[0].float().cpu(), sample.get("gt")))
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


# ----------------------------------------------------------------------------- training loop


def fit(cfg, resume=None):
    """Train as the config says. resume: None, 'auto' (newest checkpoint of the run, if any) or a path.
    Returns the run folder."""
    rank, world, local_rank = distributed_setup()  # under torchrun: one process per device
    main = rank == 0  # only the main process logs, validates and saves
    tcfg = cfg["train"]
    if cfg["data"]["train"] is None:
        raise DataError("data.train: a training dataset is required")
    # every pair's headers are checked before anything is written (DataError: one line naming the files)
    sets, notes = prepare(cfg, ("train", "val"))
    train_set, val_set = sets["train"], sets["val"]
    if len(train_set) < tcfg["batch_size"]:
        raise DataError(f"data.train has {len(train_set)} samples, fewer than train.batch_size={tcfg['batch_size']}")
    data_info = {"train": describe(train_set), "val": describe(val_set) if val_set is not None else None}
    val_info = data_info["val"]  # what checkpoints record of the data (reader, version, split)
    keep_best = val_info is not None and (not val_info["test_set"] or tcfg["select_on_test"])
    run_dir = run_dir_of(cfg)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    if main:
        os.makedirs(ckpt_dir, exist_ok=True)
        setup_logging(run_dir)
        dump_config(cfg, os.path.join(run_dir, "config.yaml"))
        for level, line in notes:
            logger.log(level, line)
    device = resolve_device(cfg["device"])
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    seed_everything(cfg["seed"])
    sampler = EpochSampler(len(train_set), cfg["seed"], tcfg["batch_size"], rank, world)
    model = build_model(cfg["model"]).to(device, memory_format=memory_format(tcfg["memory_format"], device))
    amp = tcfg["amp"]
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    losses = WeightedLosses(cfg["losses"]).to(device)
    optimizer = build_optimizer(cfg["optim"], model.parameters())
    scheduler = build_scheduler(cfg["schedule"], optimizer, tcfg["iterations"])
    metric = get_metric(cfg["eval"]["preset"], **cfg["eval"]["options"])

    gan = cfg["adversarial"]
    disc = build_model(gan["discriminator"]).to(device) if gan else None
    d_optimizer = build_optimizer(gan["optim"], disc.parameters()) if gan else None
    d_scheduler = build_scheduler(cfg["schedule"], d_optimizer, tcfg["iterations"]) if gan else None

    iteration, best = 0, None
    path, ckpt = latest_readable_checkpoint(ckpt_dir) if resume == "auto" else (resume, resume and load_checkpoint(resume))
    if path:
        best = _best_so_far(ckpt_dir)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if gan:
            disc.load_state_dict(ckpt["discriminator"])
            d_optimizer.load_state_dict(ckpt["d_optimizer"])
            d_scheduler.load_state_dict(ckpt["d_scheduler"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        sampler.epoch, sampler.offset = ckpt["data_position"]
        iteration = ckpt["iteration"]
        logger.info("resumed from %s at iteration %d (lr %.3g)", path, iteration, optimizer.param_groups[0]["lr"])
    logger.info("model %s: %d parameters; %d training samples; batch %d per process x %d process(es) = %d global; "
                "%d iterations; device %s; amp %s", cfg["model"]["type"], count_parameters(model), len(train_set),
                tcfg["batch_size"], world, tcfg["batch_size"] * world, tcfg["iterations"], device, amp)
    net, d_net = model, disc
    if world > 1:
        ids = [local_rank] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=tcfg["find_unused_parameters"])
        net.extra_inputs = model.extra_inputs
        if gan:
            d_net = DistributedDataParallel(disc, device_ids=ids)

    from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only training needs it

    writer = SummaryWriter(os.path.join(run_dir, "tb")) if main else None
    # samples are made under their own seed (SeededSamples); the loader's own generator leaves the global RNG alone
    loader = DataLoader(SeededSamples(train_set, cfg["seed"]), batch_size=tcfg["batch_size"], sampler=sampler,
                        drop_last=True, num_workers=tcfg["num_workers"], pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg["seed"]))
    batches = iter(loader)
    bar = _progress(iteration, tcfg["iterations"]) if main else None
    start, last, nonfinite = time.time(), iteration, 0
    stop = StopRequest()  # SIGINT / SIGTERM: finish the step, save, exit

    def save():
        """Checkpoint everything a resume needs (at the current iteration), keep the newest keep_last."""
        extra = {"discriminator": disc.state_dict(), "d_optimizer": d_optimizer.state_dict(),
                 "d_scheduler": d_scheduler.state_dict()} if gan else {}
        if scaler is not None:
            extra["scaler"] = scaler.state_dict()
        selection = {"by": "iteration", "iteration": iteration, "final": iteration == tcfg["iterations"],
                     "val_set": val_info}
        _save(ckpt_dir, model, optimizer, scheduler, iteration, sampler, cfg,
              {**extra, "selection": selection, "data": data_info})
        prune_checkpoints(ckpt_dir, tcfg["keep_last"])

    try:
        while iteration < tcfg["iterations"] and all_ranks_agree(stop.signal is None):
            try:
                batch = next(batches)
            except StopIteration:  # end of epoch: next permutation
                sampler.epoch, sampler.offset = sampler.epoch + 1, 0
                batches = iter(loader)
                continue
            except (OSError, ValueError) as err:  # a bad file met mid-epoch: one line, not a traceback
                raise TrainingStopped(f"{str(err).strip().splitlines()[-1]} (at iteration {iteration + 1}; the last "
                                      f"checkpoint is {latest_readable_checkpoint(ckpt_dir)[0] or 'none'})") from err
            model.train()
            if disc is None:
                logs = train_step(net, batch, losses, optimizer, scheduler, device, amp, scaler)
            else:
                logs = gan_train_step(net, d_net, batch, losses, optimizer, d_optimizer, scheduler, d_scheduler,
                                      gan["weight"], device)
            sampler.offset += tcfg["batch_size"] * world
            if "nonfinite" in logs:
                nonfinite += 1
                logger.warning("iteration %d: non-finite loss, step not applied (%d in a row); batch: %s",
                               iteration + 1, nonfinite, ", ".join(batch["lq_path"]))
                if nonfinite >= tcfg["max_nonfinite"]:
                    raise TrainingStopped(f"{nonfinite} non-finite losses in a row at iteration {iteration + 1}: "
                                          f"training stopped; the last good checkpoint is "
                                          f"{latest_readable_checkpoint(ckpt_dir)[0] or 'none'}")
                continue
            nonfinite, iteration = 0, iteration + 1
            if not main:
                continue
            for key, value in logs.items():
                writer.add_scalar(f"train/{key}", value, iteration)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], iteration)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
            elif iteration % tcfg["log_every"] == 0 or iteration == tcfg["iterations"]:
                rate = (iteration - last) / max(time.time() - start, 1e-9)
                logger.info("iter %d/%d loss %.4f lr %.3g (%.2f it/s)", iteration, tcfg["iterations"], logs["loss"],
                            optimizer.param_groups[0]["lr"], rate)
                start, last = time.time(), iteration
            if iteration % tcfg["save_every"] == 0 or iteration == tcfg["iterations"]:
                save()  # before validation: a failing validation loses no training
            if val_set is not None and (iteration % tcfg["val_every"] == 0 or iteration == tcfg["iterations"]):
                mean = _validate(model, val_set, metric, device, writer, iteration, tcfg["num_val_images"])
                if keep_best and "psnr" in mean and (best is None or mean["psnr"] > best["psnr"]):
                    best = {"psnr": mean["psnr"], "iteration": iteration}
                    selection = {"by": "best validation psnr", "iteration": iteration, "psnr": mean["psnr"],
                                 "val_set": val_info, "on_test_set": val_info["test_set"]}
                    atomic_save({"model": model.state_dict(), "iteration": iteration, "val": mean, "config": cfg,
                                 "selection": selection}, os.path.join(ckpt_dir, "best.pth"))
        if iteration < tcfg["iterations"] and main:  # stopped by a signal (on any rank)
            save()
            logger.info("stopped by %s at iteration %d; checkpoint saved; continue with --resume auto",
                        stop.signal or "a signal on another process", iteration)
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return run_dir


def test_split(cfg):
    """The data section test.py scores: data.test, or data.val when the config has no test set."""
    return "test" if cfg["data"]["test"] is not None else "val"


def train_and_evaluate(cfg, resume="auto", save_dir=None):
    """Train as the config says (continuing an interrupted run, doing nothing for a finished one;
    parameter-free models such as DCP are only tested), then evaluate the final weights on the test
    split (test_split).
    Returns (model, rows, training seconds, test seconds)."""
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
        rows, _ = evaluate(model, build_dataset(cfg["data"][test_split(cfg)]),
                           get_metric(cfg["eval"]["preset"], **cfg["eval"]["options"]), device, save_dir=save_dir)
    return model, rows, train_s, time.time() - t0


def _best_so_far(ckpt_dir):
    """{'psnr', 'iteration'} of the run's best.pth, or None (best.pth is written after the checkpoint of
    its iteration, so it, not the iteration checkpoint, holds the best score)."""
    path = os.path.join(ckpt_dir, "best.pth")
    if not os.path.isfile(path):
        return None
    val = load_checkpoint(path)
    return {"psnr": val["val"]["psnr"], "iteration": val["iteration"]}


def _progress(initial, total):
    if not sys.stderr.isatty():
        return None  # one log line per train.log_every iterations instead
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, dynamic_ncols=True)


def _validate(model, val_set, metric, device, writer, iteration, num_images):
    rows, examples = evaluate(model, val_set, metric, device, num_examples=num_images)
    mean = summarize(rows)
    for key, value in mean.items():
        writer.add_scalar(f"val/{key}", value, iteration)
    for row, triplet in zip(rows, examples):
        writer.add_image(f"val/{row['name']}", torch.cat([t for t in triplet if t is not None], dim=2), iteration)
    logger.info("val iter %d: %s", iteration, ", ".join(f"{k} {v:.4g}" for k, v in mean.items()))
    model.train()
    return mean


class TrainingStopped(RuntimeError):
    """Training ended early for a reason stated in one line (train.py prints it and exits with 1)."""



def _save(ckpt_dir, model, optimizer, scheduler, iteration, sampler, cfg, extra):
    if not all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        raise TrainingStopped(f"the weights became non-finite by iteration {iteration}: not saved; the last good "
                              f"checkpoint is {latest_readable_checkpoint(ckpt_dir)[0] or 'none'}")
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "iteration": iteration, "rng": rng_state(), "data_position": (sampler.epoch, sampler.offset),
             "config": cfg, **extra}
    atomic_save(state, os.path.join(ckpt_dir, f"iter_{iteration}.pth"))
    logger.info("saved %s", os.path.join(ckpt_dir, f"iter_{iteration}.pth"))
