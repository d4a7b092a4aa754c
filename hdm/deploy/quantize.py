"""INT8 graphs (hdm-export --quantize): ONNX Runtime's static quantisation of a checked float32 graph,
calibrated on the user's images, with its quality cost measured on the same images.

The weights of Conv, ConvTranspose and MatMul become int8 per output channel, their inputs uint8 with
ranges from the calibration (min-max), as QuantizeLinear / DequantizeLinear pairs (QDQ) that ONNX Runtime
runs as integer kernels; every other operator (HDM's grid sampling, the DCP masks, the clamps) stays
float32, and so do the graph's inputs and outputs: the file keeps the input contract of the float32 one.

The cost is the PSNR of the INT8 output against the float32 output (data range 1, the whole image) on
each calibration image, recorded in the description; a file whose worst image is below `min_psnr` is
refused. Without ground truth this measures how far quantisation moves the output, not its quality.
"""
import hashlib
import math
import os
import tempfile

import numpy as np

from hdm.deploy.description import CONTRACT_KEY, contract
from hdm.deploy.onnx_model import OnnxModel, quiet
from hdm.errors import shown
from hdm.files import temporary_file
from hdm.image_io import unit_rgb

OPERATORS = ("Conv", "ConvTranspose", "MatMul")
MIN_PSNR = 40.0  # dB against the float32 output: hdm-export --min-psnr's default


def psnr_db(ours, reference):
    """PSNR in dB of `ours` against `reference` (both in [0, 1]); None when they are equal."""
    mse = float(np.mean((ours.astype(np.float64) - reference) ** 2))
    return None if mse == 0 else 10 * math.log10(1 / mse)


def _batch(img):
    """RGB (H, W, 3) uint8 or float32 -> float32 (1, 3, H, W) in [0, 1]."""
    return np.ascontiguousarray(unit_rgb(img).transpose(2, 0, 1))[None]


def _quantize_graph(fp32_path, feeds):
    """quantize_static's graph (an onnx ModelProto) for `fp32_path`, calibrated on the input dicts `feeds`.
    ONNX Runtime's tools write files of their own beside the ones they are given (a shape-inferred copy),
    so they work in a private temporary folder, removed with all it holds on any exit (hdm.files's
    temporaries beside the target would leave theirs to a kill, under names no later write sweeps). The
    calibration keeps two numbers per quantised tensor and image (its min-max), not the tensors."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.pending = iter(feeds)

        def get_next(self):
            return next(self.pending, None)

    with tempfile.TemporaryDirectory(prefix="hdm-quantize-") as folder:
        prepared, quantized = os.path.join(folder, "prepared.onnx"), os.path.join(folder, "int8.onnx")
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, quantized, Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(OPERATORS),
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return onnx.load(quantized)


def quantize(fp32_path, meta, images, min_psnr, target):
    """(bytes of the INT8 graph, its record for the description) for the checked float32 graph at
    `fp32_path` described by `meta` (its sha256 set), calibrated on `images`, a list of (path, RGB
    (H, W, 3) as hdm.image_io.read_rgb gives it: uint8 or float32 in [0, 1]), each made a float32 batch
    only when it runs. `target` is the path the file will have (messages, its temporary).
    RuntimeError of one line when quantisation fails or the worst image is below `min_psnr` dB."""
    import onnxruntime

    fp32 = OnnxModel(fp32_path, meta=meta)
    try:
        with quiet(None):
            graph = _quantize_graph(fp32_path, (fp32.feeds(_batch(img)) for _, img in images))
    except Exception as err:  # noqa: BLE001 - ONNX Runtime's and onnx's own exception types
        raise RuntimeError(f"{shown(target)}: INT8 quantisation failed ({str(err).splitlines()[0][:200]}); "
                           f"nothing written") from err
    with temporary_file(target) as int8_path:
        entry = graph.metadata_props.add()  # quantize_static does not keep the float32 file's metadata
        entry.key, entry.value = CONTRACT_KEY, contract(meta)
        data = graph.SerializeToString()
        with open(int8_path, "wb") as f:
            f.write(data)
        int8 = OnnxModel(int8_path, meta={**meta, "sha256": hashlib.sha256(data).hexdigest()})
        try:
            scores = [psnr_db(int8.run_batch(x), fp32.run_batch(x)) for x in (_batch(img) for _, img in images)]
        except ValueError as err:
            raise RuntimeError(f"{shown(target)}: the INT8 graph fails in ONNX Runtime ({err}); nothing written") from err
    finite = [s for s in scores if s is not None]
    worst = min(finite, default=None)
    if worst is not None and worst < min_psnr:
        name = shown(images[scores.index(worst)][0])
        raise RuntimeError(f"{shown(target)}: the INT8 graph's output on {name} is {worst:.1f} dB PSNR from the float32 "
                           f"graph's, below --min-psnr {min_psnr:g}; nothing written")
    record = {"method": "onnxruntime.quantization.quantize_static: QDQ, min-max calibration, int8 weights per output "
                        "channel, uint8 activations",
              "operators": list(OPERATORS), "onnxruntime": onnxruntime.__version__, "min_psnr_db": min_psnr,
              "psnr_vs_float32_db": {"min": worst, "mean": None if not finite else sum(finite) / len(finite)},
              "images": [{"name": os.fsdecode(name), "size": list(img.shape[:2]), "psnr_vs_float32_db": score}
                         for (name, img), score in zip(images, scores)],
              "note": "PSNR of the INT8 output against the float32 graph's (data range 1) on each calibration "
                      "image; null: equal outputs (min and mean are over the others; null when none differs)"}
    return data, record
