"""An exported model (hdm-export's .onnx file and the .json beside it) run by ONNX Runtime on NumPy
arrays, without torch.

The input contract, written in the JSON: `image` is RGB float32 (1, 3, H, W) in [0, 1], any H and W
up to `max_side`; the output `restored` is RGB float32 (1, 3, H, W) in [0, 1]. An HDM graph whose
regions come from the dark channel prior also takes `masks`, one-hot (1, N, ceil(H / 4), ceil(W / 4)),
which `OnnxModel` computes with hdm.deploy.dcp_masks from the image padded to a multiple of 4.
"""
import json
import os

import numpy as np

from hdm.deploy.dcp_masks import region_masks

FORMAT = "hdm-onnx/1"


def sidecar_path(path):
    return os.path.splitext(path)[0] + ".json"


def read_sidecar(path):
    """The JSON hdm-export writes beside `path`; ValueError naming the file when it is missing or not ours."""
    meta_path = sidecar_path(path)
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{meta_path}: missing; hdm-export writes it beside the .onnx file (the input contract)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_path}: not readable JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not an hdm-export description (expected format {FORMAT!r})")
    return meta


class OnnxModel:
    """model(image) -> restored, both RGB float32 (H, W, 3) in [0, 1] (uint8 input is scaled by 255)."""

    def __init__(self, path, threads=None, meta=None):
        import onnxruntime as ort  # a dependency of this route only

        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such ONNX file")
        self.meta = meta or read_sidecar(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own exception types
            raise ValueError(f"{path}: ONNX Runtime cannot load it ({str(err).splitlines()[0][:200]})") from err
        self.masks = self.meta.get("masks")

    def run_batch(self, x):
        """(1, 3, H, W) float32 in [0, 1] -> (1, 3, H, W) float32 in [0, 1]."""
        h, w = x.shape[-2:]
        if self.meta["max_side"] and max(h, w) > self.meta["max_side"]:
            raise ValueError(f"{w}x{h}: longer than the exported graph's max side of {self.meta['max_side']} pixels")
        feeds = {"image": x}
        if self.masks is not None:
            padded = np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="edge")
            feeds["masks"] = region_masks(padded, **self.masks["options"])
        try:
            return self.session.run(["restored"], feeds)[0]
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own exception types (allocation failures among them)
            raise ValueError(f"{w}x{h}: ONNX Runtime failed ({str(err).splitlines()[0][:160]})") from err

    def __call__(self, image):
        x = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image.astype(np.float32)
        return self.run_batch(np.ascontiguousarray(x.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
