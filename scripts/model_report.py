"""Parameters and multiply-accumulates per stage of any model config at a given input size.

    python scripts/model_report.py -c configs/dehaze/hdm_its.yaml --size 460 620
    python scripts/model_report.py -c configs/ablations/table5_b.yaml --size 240 240

MACs are counted by torch.utils.flop_counter (convolutions and matrix products, FLOPs = 2 x MACs);
a module applied twice (HDM's shared S and R) is counted twice. Sampling (grid_sample), pooling,
activations and the rest of the DCP masks are not counted; the masks' resize matrix products are
the row "(in forward, outside the stages)".
"""
import os

import torch
from torch.utils.flop_counter import FlopCounterMode

from hdm.cli import Parser, console
from hdm.config import ConfigError, load_config
from hdm.models import build_model, count_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report(model, size):
    """[(stage, params, macs)] for the model's top-level children, then the total."""
    h, w = size
    lq = torch.rand(1, 3, h, w)
    extras = {"trans": torch.rand(1, 1, h, w)} if "trans" in model.extra_inputs else {}
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(lq, **extras)
    flops = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, child in model.named_children():
        macs = sum(flops.get(f"{root}.{name}", {}).values()) // 2
        rows.append((name, count_parameters(child), macs))
    total = counter.get_total_flops() // 2
    # work done in forward() itself, outside every child (for HDM: the resize inside the DCP masks)
    rows.append(("(in forward, outside the stages)", 0, total - sum(r[2] for r in rows)))
    rows.append(("total", count_parameters(model), total))
    return rows


def markdown(rows, size):
    total = rows[-1][2] or 1
    lines = [f"input 1x3x{size[0]}x{size[1]}", "", "| stage | params | GMACs | share |", "|---|---|---|---|"]
    for name, params, macs in rows:
        lines.append(f"| {name} | {params:,} | {macs / 1e9:.3f} | {100 * macs / total:.1f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = Parser(__doc__)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--size", type=int, nargs=2, default=(460, 620), metavar=("H", "W"))
    args = parser.parse(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        parser.exit(2, f"config error: {err}\n")
    rows = report(build_model(cfg["model"]), args.size)
    print(f"{cfg['model']['type']} from {args.config}")
    print(markdown(rows, args.size))
    return rows


if __name__ == "__main__":
    console(main)
