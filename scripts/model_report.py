"""Parameters and multiply-accumulates per stage of any model config at a given input size.

    # doc-test: skip (the command of docs/ablations.md, which runs and is checked there)
    python scripts/model_report.py -c configs/dehaze/hdm_its.yaml --size 460 620
    python scripts/model_report.py -c configs/ablations/table5_b.yaml --size 240 240

How MACs are counted: hdm/models/complexity.py.
"""
from hdm.cli import Parser, console, positive_int
from hdm.config import load_config
from hdm.models import MODELS, build_model
from hdm.models.complexity import stage_report


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
    parser.add_argument("--size", type=positive_int, nargs=2, default=(460, 620), metavar=("H", "W"))
    args = parser.parse(argv)
    cfg = load_config(args.config, args.overrides)
    need = getattr(MODELS[cfg["model"]["type"]], "MIN_INPUT_SIDE", 1)
    if min(args.size) < need:
        parser.error(f"--size {args.size[0]} {args.size[1]}: {cfg['model']['type']} takes inputs of at least {need} x {need}")
    rows = stage_report(build_model(cfg["model"]), args.size)
    print(f"{cfg['model']['type']} from {args.config}")
    print(markdown(rows, args.size))
    return rows


if __name__ == "__main__":
    console(main)
