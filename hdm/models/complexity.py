"""Parameters and multiply-accumulates of a model at a given input size, per top-level stage.

MACs are counted by torch.utils.flop_counter (convolutions and matrix products, FLOPs = 2 x MACs); a
module applied twice (HDM's shared S and R) is counted twice. Sampling (grid_sample), pooling,
activations and the rest of the DCP masks are not counted; the masks' resize matrix products fall in
the row "(in forward, outside the stages)".
"""
import torch
from torch.utils.flop_counter import FlopCounterMode

from . import count_parameters


def stage_report(model, size):
    """[(stage, params, macs)] for the model's top-level children, then the rest of forward, then the total."""
    h, w = size
    lq = torch.rand(1, 3, h, w)
    extras = {"trans": torch.rand(1, 1, h, w)} if "trans" in getattr(model, "extra_inputs", ()) else {}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(lq, **extras)
    flops = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, child in model.named_children():
        rows.append((name, count_parameters(child), sum(flops.get(f"{root}.{name}", {}).values()) // 2))
    total = counter.get_total_flops() // 2
    rows.append(("(in forward, outside the stages)", 0, total - sum(r[2] for r in rows)))
    rows.append(("total", count_parameters(model), total))
    return rows


def macs(model, size):
    """Total multiply-accumulates of one forward pass at size (H, W)."""
    return stage_report(model, size)[-1][2]
