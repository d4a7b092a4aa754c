"""Image files <-> RGB arrays (float32 in [0, 1], or uint8), with NumPy and OpenCV only: the tools that run
without torch (hdm-predict --onnx) read and write images with it too. Tensors: hdm.data.io."""
import contextlib
import os
import tempfile

import cv2
import numpy as np

from hdm.files import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def images_in(folder, recursive=False):
    """Sorted paths of the image files in `folder` (and its sub-folders when `recursive`); a clear
    error if it is missing."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder (expected a folder of images)")
    if not recursive:
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if is_image(n)]
    return sorted(os.path.join(top, n) for top, _, names in os.walk(folder) for n in names if is_image(n))


# A file cut short (an interrupted copy or download) lacks the marker its format ends with: OpenCV
# decodes a truncated JPEG silently (grey below the cut), and a header alone does not show it.
END_MARKERS = {".jpg": (b"\xff\xd9", 1024, "JPEG (no end-of-image marker)"),
               ".jpeg": (b"\xff\xd9", 1024, "JPEG (no end-of-image marker)"),
               ".png": (b"IEND", 12, "PNG (no IEND chunk)")}


def check_complete(path, formats=END_MARKERS):
    """OSError naming the file when a file of one of `formats` lacks its end marker in its last bytes."""
    marker, window, what = formats.get(os.path.splitext(path)[1].lower(), (None, 0, ""))
    if marker is None:
        return
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(f.tell() - window, 0))
        if marker not in f.read():
            raise OSError(f"{path}: truncated {what}")


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _tiff_header(path):
    with quiet_stderr():
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"{path}: not a readable image")
    return img.shape[0], img.shape[1], img.ndim == 3 and img.shape[2] >= 3


def image_header(path):
    """(height, width, colour) of an image file from its header alone, as read_image would return it
    (EXIF-rotated JPEGs swap height and width; colour False for grey images); the end of the file is
    checked for truncation. OSError naming the file when it is not a readable image or has more than
    MAX_PIXELS pixels."""
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OSError(f"{path}: no such file")
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit applies (MAX_PIXELS)
    try:
        with Image.open(path) as im:
            w, h = im.size
            colour = im.mode not in GREY_MODES
            if im.format == "JPEG" and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientation: transposed
                w, h = h, w
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if path.lower().endswith((".tif", ".tiff")):  # PIL reads no 3-channel float TIFF: decode it to see
            return _tiff_header(path)
        raise OSError(f"{path}: not a readable image ({type(err).__name__})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    check_complete(path)
    if h * w > MAX_PIXELS:
        raise OSError(f"{path}: {w}x{h} = {h * w / 1e6:.0f} Mpixels, above the limit of {MAX_PIXELS / 1e6:.0f} "
                      f"Mpixels (set HDM_MAX_PIXELS to allow it)")
    return h, w, colour


# decoding refuses images above this many pixels (a 69-byte PNG can claim 65535 x 65535); 8K is 33 M
MAX_PIXELS = int(os.environ.get("HDM_MAX_PIXELS", 400_000_000))
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our errors name the file instead


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C libraries print on file descriptor 2 (libpng's own "libpng error" lines) while
    they decode or encode; our own one-line errors say what went wrong."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _decode(path, flags):
    """The decoded array (uint8, uint16 or float) after the header checks, or OSError naming the file."""
    path = os.fspath(path)
    image_header(path)  # readable, not truncated, not above the pixel limit
    try:
        with quiet_stderr():
            img = cv2.imread(path, flags)
    except cv2.error:
        img = None
    if img is None:
        raise OSError(f"{path}: not a readable image")
    return img


def _to_unit(img, path):
    """uint8 / 65535 for uint16 / float images as they are, as float32 in [0, 1]; non-finite pixels are
    an error, and float values outside [0, 1] are clipped."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    img = img.astype(np.float32)
    bad = int(np.size(img) - np.count_nonzero(np.isfinite(img)))
    if bad:
        raise OSError(f"{path}: {bad} non-finite pixel values (NaN or inf); expected finite values in [0, 1]")
    return np.clip(img, 0.0, 1.0)


def read_image(path):
    """RGB float32 (H, W, 3) in [0, 1]; a clear error naming the file otherwise.

    Grey images are expanded to RGB, an alpha channel is dropped, 16-bit images are scaled by 65535,
    float images (TIFF) are taken as values in [0, 1] (clipped; NaN or inf is an error), CMYK JPEGs
    are converted, and the EXIF orientation is applied (OpenCV's IMREAD_COLOR), the same for inputs
    and targets."""
    img = _decode(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    return _to_unit(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), os.fspath(path))


def read_rgb(path):
    """RGB (H, W, 3) as stored: uint8 for 8-bit images (a quarter of float32's memory), else float32 in
    [0, 1] as read_image."""
    img = cv2.cvtColor(_decode(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH), cv2.COLOR_BGR2RGB)
    return img if img.dtype == np.uint8 else _to_unit(img, os.fspath(path))


def read_gray(path):
    """Single-channel float32 (H, W, 1) in [0, 1] (e.g. a transmission map)."""
    return _to_unit(_decode(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH), os.fspath(path))[..., None]


def ensure_writable(folder):
    """Create `folder` if needed and check that files can be written there (one clear error if not)."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
    except OSError as err:
        raise OSError(f"{folder}: output folder is not writable ({err.strerror or err})") from err


def to_uint8(img):
    """(H, W, 3) float in [0, 1] (array or tensor) -> uint8, rounded."""
    if hasattr(img, "detach"):  # a torch tensor, without importing torch here
        img = img.detach().cpu().numpy()
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def encode_image(img, ext=".png", name=None):
    """The bytes of an RGB (H, W, 3) or grey (H, W) image, float in [0, 1] (array or tensor) or uint8, in
    the format of `ext`; OSError naming `name` (or the format) when it cannot be encoded."""
    if img.dtype != np.uint8:
        img = to_uint8(img)
    with quiet_stderr():
        ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)
    if not ok:
        raise OSError(f"{name or 'image'}: could not encode image as {ext}")
    return buf.tobytes()


def write_image(path, img):
    """Write an RGB (H, W, 3) or grey (H, W) image, float in [0, 1] or uint8, atomically (nothing partial
    is left on a write error, which names the file)."""
    path = os.fspath(path)
    data = encode_image(img, os.path.splitext(path)[1] or ".png", path)
    with atomic_write(path) as f:
        f.write(data)
