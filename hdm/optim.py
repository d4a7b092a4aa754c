"""Optimizers and learning-rate schedules, built by name from explicit tables (like models and losses).

    optim:    {type: Adam | AdamW, lr, betas, weight_decay}
    schedule: {type: cosine (to eta_min over the run) | step (x gamma every step_size), eta_min, step_size, gamma}
Schedules step once per iteration.
"""
import torch

OPTIMIZERS = {
    "Adam": torch.optim.Adam,    # the papers' optimizer
    "AdamW": torch.optim.AdamW,  # decoupled weight decay
}
SCHEDULES = {
    "cosine": lambda cfg, optimizer, iterations: torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=iterations, eta_min=cfg["eta_min"]),
    "step": lambda cfg, optimizer, iterations: torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"]),
}


def build_optimizer(cfg, params):
    """cfg: a checked optim section (numbers may be ints: torch takes betas as floats only)."""
    return OPTIMIZERS[cfg["type"]](params, lr=float(cfg["lr"]), betas=tuple(map(float, cfg["betas"])),
                                   weight_decay=float(cfg["weight_decay"]))


def build_scheduler(cfg, optimizer, iterations):
    return SCHEDULES[cfg["type"]](cfg, optimizer, iterations)
