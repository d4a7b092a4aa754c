"""A local web page that restores photos with the models given here.

    hdm-serve runs/hdm_its/checkpoints/best.pth                        # a checkpoint (its stored config)
    hdm-serve configs/dehaze/hdm_its.yaml:W.pth configs/baselines/dcp_sots.yaml   # CONFIG[:WEIGHTS] too
    hdm-serve W.pth --port 8000 --tile 1024 --max-upload-mb 50

Open http://127.0.0.1:8000 and choose a model, upload photos, compare with the slider, see HDM's
DCP maps, download the results. It binds to 127.0.0.1 (this machine only) unless --host says
otherwise, and needs nothing from the internet.
"""
import os

from hdm.cli import Parser, UsageError, console


def model_specs(items):
    """'W.pth' -> (None, W.pth); 'C.yaml' -> (C.yaml, None); 'C.yaml:W.pth' -> (C.yaml, W.pth)."""
    specs = []
    for item in items:
        first, _, second = item.partition(":")
        if first.endswith((".yaml", ".yml")):
            specs.append((first, second or None))
        elif second:
            raise UsageError(f"{item}: expected WEIGHTS, CONFIG.yaml or CONFIG.yaml:WEIGHTS")
        else:
            specs.append((None, first))
    return specs


def main(argv=None):
    parser = Parser(__doc__, prog="hdm-serve")
    parser.add_argument("models", nargs="+", help="checkpoints, CONFIG.yaml (parameter-free models) or CONFIG.yaml:WEIGHTS")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tile", type=int, default=1024, help="photos with a longer side are restored in tiles")
    parser.add_argument("--max-upload-mb", type=int, default=50)
    parser.add_argument("--device", default="auto")
    args = parser.parse(argv)
    if args.tile % 4 or args.tile <= 48:
        raise UsageError(f"--tile {args.tile}: a multiple of 4 above the overlap of 48")
    if not 0 < args.port < 65536 or args.max_upload_mb < 1:
        raise UsageError("--port must be 1..65535 and --max-upload-mb at least 1")
    from hdm.cli.loading import load_models
    from hdm.device import resolve_device
    from hdm.web.app import create_app

    specs = model_specs(args.models)
    device = resolve_device(args.device)
    models = load_models(specs, device)
    labels = [os.path.basename(w or c) for c, w in specs]
    app = create_app(models, labels, device, tile=args.tile, max_upload_mb=args.max_upload_mb)
    print(f"hdm-serve: {len(models)} model(s) on {device}; open http://{args.host}:{args.port}", flush=True)
    app.run(host=args.host, port=args.port, threaded=False)
    return 0


def run():
    console(main)


if __name__ == "__main__":
    run()
