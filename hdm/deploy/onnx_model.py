"""An exported model (hdm-export's .onnx file and the .json beside it) run by ONNX Runtime on NumPy
arrays, without torch.

The input contract, written in the JSON: `image` is RGB float32 (1, 3, H, W) in [0, 1], any H and W
up to `max_side`; the output `restored` is RGB float32 (1, 3, H, W) in [0, 1]. An HDM graph whose
regions come from the dark channel prior also takes `masks`, one-hot (1, N, ceil(H / 4), ceil(W / 4)),
which `OnnxModel` computes with hdm.deploy.dcp_masks from the image padded to a multiple of 4.
"""
import contextlib
import io
import logging
import warnings

import numpy as np

from hdm.deploy import description
from hdm.deploy.dcp_masks import region_masks
from hdm.errors import shown
from hdm.files import open_input
from hdm.image_io import unit_rgb


@contextlib.contextmanager
def quiet(logger_name):
    """The exporter's and ONNX Runtime's Python tools print advice, warn and log; the user gets our one
    line instead: their stdout and warnings dropped, the logger `logger_name` (None: the root) at errors
    only, for the block."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def session_options(threads=None):
    """ONNX Runtime's session options for every graph here: its defaults, which measured fastest for each
    exported model (docs/deploy.md: graph optimisation level, memory arena and pattern, execution mode,
    spinning), with its log at fatal only (its errors and warnings reach the user as our one line) and
    `threads` intra-op threads (None: ONNX Runtime's choice, one per physical core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    if threads:
        options.intra_op_num_threads = threads
    return options


class OnnxModel:
    """model(image) -> restored, both RGB (H, W, 3) in [0, 1], the output float32; uint8 and uint16 input is
    scaled as image files are, anything else is refused (hdm.image_io.unit_rgb).

    The file is verified before it runs anything (hdm.deploy.description): its description (`meta`, by
    default the .json beside it) holds every key used here with the right type, the file's bytes have
    the recorded sha256, the description's contract is the copy embedded in the file at export, and the
    graph's inputs and outputs are the described ones. Any failure, and a file ONNX Runtime cannot load
    or run, is a ValueError of one line naming the file (or the image's size); ONNX Runtime's own log
    lines are silenced, so that this line is all the user sees."""

    def __init__(self, path, threads=None, meta=None):
        import onnxruntime as ort  # a dependency of this route only

        try:
            with open_input(path, "ONNX file") as f:
                data = f.read()
        except OSError as err:
            raise ValueError(str(err)) from err
        meta_path = description.sidecar_path(path)
        if meta is None:
            self.meta = description.read_description(path)
        else:
            self.meta = description.check_description(meta, meta_path)
        description.check_digest(data, self.meta, path, meta_path)
        options = session_options(threads)
        try:  # from the bytes just verified, not the file again
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own exception types
            raise ValueError(f"{shown(path)}: ONNX Runtime cannot load it ({str(err).splitlines()[0][:200]})") from err
        description.check_contract(self.session, self.meta, path, meta_path)
        description.check_graph(self.session, self.meta, path)
        self.masks = self.meta["masks"]

    def run_batch(self, x):
        """(1, 3, H, W) float32 in [0, 1] -> (1, 3, H, W) float32 in [0, 1]."""
        h, w = x.shape[-2:]
        if self.meta["max_side"] and max(h, w) > self.meta["max_side"]:
            raise ValueError(f"{w}x{h}: longer than the exported graph's max side of {self.meta['max_side']} pixels")
        feeds = self.feeds(x)
        try:
            return self.session.run(["restored"], feeds)[0]
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own exception types (allocation failures among them)
            raise ValueError(f"{w}x{h}: ONNX Runtime failed ({str(err).splitlines()[0][:160]})") from err

    def feeds(self, x):
        """The graph's inputs for an image (1, 3, H, W): the image, and HDM's masks computed from it."""
        feeds = {"image": x}
        if self.masks is not None:
            h, w = x.shape[-2:]
            padded = np.pad(x, ((0, 0), (0, 0), (0, -h % 4), (0, -w % 4)), mode="edge")
            feeds["masks"] = region_masks(padded, **self.masks["options"])
        return feeds

    def __call__(self, image):
        x = unit_rgb(image)
        return self.run_batch(np.ascontiguousarray(x.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
