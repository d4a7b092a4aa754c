"""Trained models as ONNX files, checked by ONNX Runtime against PyTorch (hdm-export).

Every model is exported through `Deployed`, the input contract it then keeps: RGB float32
(1, 3, H, W) in [0, 1], any H and W, in; RGB float32 in [0, 1] (clamped) out. The padding to the
network's multiple and the input normalisation are inside the graph. The graph is traced by
torch.export with symbolic sizes; the code paths whose shape depends on the size, or that ONNX Runtime runs
faster in another form, have an exported form (hdm.ops.svrnn's scan operator, PF-DCP's fixed-depth pyramid,
the box filter's running sums, min filters as pooling), chosen by torch.compiler.is_exporting()
(docs/deploy.md lists them).

HDM's DCP region masks are not in the graph: the Lanczos-3 resampling weights are computed per size
in Python (a loop over output positions), and the masks hinge on float64 sums and a 2000-bin histogram
whose bins move with one rounding; torch.export cannot keep them symbolic and an ONNX rewrite would not
be bit-equal. An HDM graph takes the masks as a second input, `masks`, and hdm.deploy.dcp_masks computes
them in NumPy equal to the torch ones (hdm.deploy.onnx_model does this for the user).

`export` writes nothing until ONNX Runtime has reproduced PyTorch within TOLERANCE on CHECK_SIZES crops
of real photos (odd sizes among them), loading the graph as OnnxModel does (verified against its
description); the file and its JSON description are then published atomically. The file's metadata holds
a copy of the description's contract (hdm.deploy.description.CONTRACT: how the graph is fed and read),
covered by the sha256, so that a .json edited afterwards is refused when it loads. The graph is traced into a
temporary file of hdm.files beside the target, removed on any exit (hdm-export turns SIGTERM into one) and
by a later write into the folder when a kill left it.
"""
import hashlib
import json

import numpy as np
import torch
import torch.nn as nn

from hdm.deploy.description import CONTRACT_KEY, FORMAT, contract, sidecar_path
from hdm.deploy.onnx_model import OnnxModel, quiet
from hdm.errors import shown
from hdm.files import atomic_write, temporary_file
from hdm.models import HDM, PFDCP
from hdm.models.dcp_baselines import EXPORT_MAX_SIDE

OPSET = 18
TOLERANCE = 1e-4
CHECK_SIZES = ((256, 384), (241, 321), (130, 97))  # (H, W) crops of three photos
EXPORTABLE = ("HDM", "AECRNet", "HybridNet", "DCP", "PFDCP")


class Deployed(nn.Module):
    """A model with the deployment contract: forward(image[, masks]) -> RGB in [0, 1]. `masks` are HDM's
    DCP region masks; without them HDM computes its own."""

    def __init__(self, model):
        super().__init__()
        if type(model).__name__ not in EXPORTABLE:
            raise ValueError(f"{type(model).__name__}: not a model that restores images ({', '.join(EXPORTABLE)})")
        if model.extra_inputs:
            raise ValueError(f"{type(model).__name__} needs {', '.join(model.extra_inputs)} besides the image "
                             f"(region='depth'); only image-only models are deployed")
        self.model = model
        self.eval()

    @property
    def takes_masks(self):
        m = self.model
        return isinstance(m, HDM) and "R" in m.stages and m.region == "dcp"

    def forward(self, image, masks=None):
        out = self.model(image) if masks is None else self.model(image, mask=masks)
        return out.clamp(0, 1)


def check_photos(sizes=CHECK_SIZES):
    """Crops of scikit-image's photos at `sizes`, as RGB float32 (1, 3, H, W) arrays in [0, 1]."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    out = []
    for i, (h, w) in enumerate(sizes):
        img = photos[i % len(photos)]
        if img.shape[0] < h or img.shape[1] < w:
            raise ValueError(f"check size {h}x{w} is larger than the photo ({img.shape[0]}x{img.shape[1]})")
        out.append(np.ascontiguousarray(img[:h, :w].transpose(2, 0, 1)[None], dtype=np.float32) / 255)
    return out


def max_side(model):
    """The longest side the exported graph takes (None: any)."""
    return EXPORT_MAX_SIDE if isinstance(model, PFDCP) else None


def mask_options(model):
    return {"num_regions": model.num_regions, **model.dcp_options}


def _trace(deployed, path, meta):
    """torch.onnx.export (torch.export with symbolic height and width) into `path`, quietly, with the
    contract of the description `meta` in the file's metadata (CONTRACT_KEY: the loader compares the .json
    with it)."""
    import onnx  # the export's own dependencies (the deploy extra); Deployed and the hub need neither

    from hdm.deploy.dcp_masks import region_masks

    image = torch.from_numpy(check_photos(((64, 72),))[0])
    args, names = (image,), ["image"]
    if deployed.takes_masks:
        args += (torch.from_numpy(region_masks(image.numpy(), **mask_options(deployed.model))),)
        names.append("masks")
    # one image per run: HDM's region conv groups its dynamic filters by the batch, which does not export
    dims = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    with quiet("torch.onnx"):
        torch.onnx.export(deployed, args, path, dynamo=True, input_names=names, output_names=["restored"],
                          dynamic_shapes=(dims,) * len(args), opset_version=OPSET, external_data=False)
    # The exporter annotates intermediate shapes with symbolic names; in PF-DCP's deepest pyramid levels
    # it gives two different sizes one name, and ONNX Runtime's buffer planner then fails at some image
    # sizes (measured at 256 x 384). Without the annotations ONNX Runtime infers the shapes itself.
    graph = onnx.load(path)
    del graph.graph.value_info[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = CONTRACT_KEY, contract(meta)
    onnx.save(graph, path)


def compare(deployed, session, photos):
    """Max |ONNX Runtime - PyTorch| on each photo; the ONNX side gets its masks from NumPy, the torch
    side computes its own, as each is used."""
    diffs = []
    for x in photos:
        with torch.inference_mode():
            ref = deployed(torch.from_numpy(x)).numpy()
        diffs.append(float(np.abs(session.run_batch(x) - ref).max()))
    return diffs


def describe(deployed, cfg, record):
    """The JSON written beside the .onnx file (without the check's figures and the file digest)."""
    model = deployed.model
    inputs = [{"name": "image", "shape": [1, 3, "height", "width"], "dtype": "float32",
               "range": [0, 1], "colour": "RGB"}]
    masks = None
    if deployed.takes_masks:
        masks = {"function": "hdm.deploy.dcp_masks.region_masks", "options": mask_options(model),
                 "input": "the image padded to a multiple of 4 by repeating its last row and column"}
        inputs.append({"name": "masks", "shape": [1, model.num_regions, "ceil(height / 4)", "ceil(width / 4)"],
                       "dtype": "float32", "values": "one-hot over the regions"})
    return {"format": FORMAT, "model": cfg["model"]["type"], "config": cfg, "weights": record["weights"],
            "iteration": record.get("iteration"), "chosen": record["chosen"],
            "preset": cfg.get("eval", {}).get("preset"), "inputs": inputs,
            "outputs": [{"name": "restored", "shape": [1, 3, "height", "width"], "dtype": "float32",
                         "range": [0, 1], "colour": "RGB"}],
            "masks": masks, "max_side": max_side(model), "opset": OPSET, "torch": torch.__version__}


def export(model, path, cfg, record, check_sizes=CHECK_SIZES, calibration=None):
    """Export `model` to `path` with its JSON beside it; returns the JSON's dict. Raises RuntimeError
    (nothing written) when ONNX Runtime differs from PyTorch by more than TOLERANCE, OSError naming
    `path` when the file cannot be written (a full disk). calibration: None, or (images, min_psnr) to
    write the checked graph's INT8 form instead (hdm.deploy.quantize; images: a list of (path, RGB
    (H, W, 3) uint8 or float32 in [0, 1])), which raises RuntimeError below min_psnr."""
    import onnxruntime

    from hdm.ops.deform_conv import ModulatedDeformConv2d

    for module in model.modules():
        if isinstance(module, ModulatedDeformConv2d):
            module.backend = "torch"  # the pure-PyTorch deformable conv is the one that exports
    deployed = Deployed(model.float().to("cpu", memory_format=torch.contiguous_format))
    meta = describe(deployed, cfg, record)
    with temporary_file(path) as tmp:
        try:
            _trace(deployed, tmp, meta)
            with open(tmp, "rb") as f:
                data = f.read()
        except OSError as err:
            raise OSError(f"{shown(path)}: could not be written ({err.strerror or err}); nothing written") from err
        meta["sha256"] = hashlib.sha256(data).hexdigest()
        try:
            diffs = compare(deployed, OnnxModel(tmp, meta=meta), check_photos(check_sizes))
        except ValueError as err:  # ONNX Runtime could not load or run the graph, or it is not the described one
            message = f"{shown(path)}: the exported graph fails in ONNX Runtime ({err}); nothing written"
            raise RuntimeError(message) from err
        meta["check"] = {"onnxruntime": onnxruntime.__version__, "sizes": [list(s) for s in check_sizes],
                         "max_abs_diff": diffs, "tolerance": TOLERANCE}
        if not max(diffs) <= TOLERANCE:
            raise RuntimeError(f"{shown(path)}: ONNX Runtime differs from PyTorch by {max(diffs):.2e} "
                               f"(> {TOLERANCE:g}) on sizes {list(check_sizes)}; nothing written")
        if calibration is not None:
            from hdm.deploy.quantize import quantize

            meta["check"]["graph"] = "float32, before quantisation"
            data, meta["quantization"] = quantize(tmp, meta, *calibration, path)
            meta["sha256"] = hashlib.sha256(data).hexdigest()
    # both files are written out before either replaces anything: a full disk leaves neither
    with atomic_write(sidecar_path(path), "w") as description, atomic_write(path) as graph:
        graph.write(data)
        json.dump(meta, description, indent=2)
        graph.flush()
        description.flush()
    return meta
