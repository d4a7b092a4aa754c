"""TrainState: everything a training run is at one moment, in one object that alone knows how to be
saved and restored. A checkpoint file is `TrainState.state_dict()` plus what the run records beside
it (config, selection, data); the file naming rule lives in hdm/checkpoint.py.

    state.iteration, state.best, state.last_good      counters and scores
    state.model, state.optimizer, state.scheduler     the generator and its optimisation
    state.scaler                                      fp16 GradScaler (None otherwise)
    state.disc, state.d_optimizer, state.d_scheduler  the discriminator of GAN runs (None otherwise)
    state.ema                                         EMA of the model's weights (None when off)
    state.sampler                                     the data position (epoch, offset)
"""
import copy
import math

import torch

from hdm.runtime import rng_state, set_rng_state


class EMA(torch.nn.Module):
    """Exponential moving average of a model's weights (BasicSR's net_g_ema): after each applied step,
    ema = decay * ema + (1 - decay) * weights for floating-point parameters and buffers (others are
    copied). `module` is a copy of the model in eval mode; validation and best.pth use it."""

    def __init__(self, model, decay):
        super().__init__()
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for ema, live in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema.is_floating_point():
                ema.lerp_(live.detach(), 1.0 - self.decay)
            else:
                ema.copy_(live)


class TrainState:
    """The model and all that changes while it trains. `best` is {'psnr', 'iteration'} of best.pth;
    `last_good` the newest iteration whose checkpoint was validated with finite outputs."""

    def __init__(self, model, optimizer, scheduler, sampler, scaler=None, disc=None, d_optimizer=None,
                 d_scheduler=None, ema=None):
        self.model, self.optimizer, self.scheduler, self.sampler = model, optimizer, scheduler, sampler
        self.scaler, self.disc, self.d_optimizer, self.d_scheduler, self.ema = scaler, disc, d_optimizer, d_scheduler, ema
        self.iteration, self.best, self.last_good = 0, None, None

    @property
    def eval_model(self):
        """The weights validation and best.pth use: the EMA when it is on."""
        return self.ema.module if self.ema is not None else self.model

    def _parts(self):
        parts = {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler,
                 "discriminator": self.disc, "d_optimizer": self.d_optimizer, "d_scheduler": self.d_scheduler,
                 "ema": self.ema.module if self.ema is not None else None}
        return {name: part for name, part in parts.items() if part is not None}

    def state_dict(self):
        return {**{name: part.state_dict() for name, part in self._parts().items()}, "iteration": self.iteration,
                "data_position": (self.sampler.epoch, self.sampler.offset), "rng": rng_state(), "best": self.best,
                "last_good": self.last_good}

    def load_state_dict(self, state):
        """Restore everything; a part this run has but the checkpoint lacks (EMA turned on, say) is an error."""
        missing = [name for name in self._parts() if name not in state]
        if missing:
            raise KeyError(f"the checkpoint holds no {', '.join(missing)}")
        for name, part in self._parts().items():
            part.load_state_dict(state[name])
        self.iteration, self.best, self.last_good = state["iteration"], state["best"], state.get("last_good")
        self.sampler.epoch, self.sampler.offset = state["data_position"]
        set_rng_state(state["rng"])

    def weights_finite(self):
        return all(torch.isfinite(v).all() for v in self.model.state_dict().values() if v.is_floating_point())

    def extend_schedule(self, iterations):
        """A cosine schedule continued to a new length: from the current iteration on, the learning rate
        is that of a run planned for `iterations` from the start (it never climbs back up past the old end)."""
        for scheduler, optimizer in ((self.scheduler, self.optimizer), (self.d_scheduler, self.d_optimizer)):
            if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and scheduler.T_max != iterations:
                scheduler.T_max = iterations
                progress = math.cos(math.pi * scheduler.last_epoch / iterations)
                for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                    group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * (1 + progress) / 2
                scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
