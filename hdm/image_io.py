"""Image files <-> RGB arrays (float32 in [0, 1], or uint8), with NumPy and OpenCV only: the tools that run
without torch (hdm-predict --onnx) read and write images with it too. Tensors: hdm.data.io.

One reader: every read (datasets, hdm-predict, test.py, hdm-evaluate, hdm-serve's uploads) reads the
file's bytes in Python and decodes them from memory, so no file name ever reaches a C library and any
name works (bytes that are not UTF-8, newlines). The format is decided from the bytes, never from the
name; hdm.image_format parses the header and judges completeness. Before decoding, an image is refused
(OSError, one line naming the file) when it has HDM_MAX_PIXELS pixels or more (default 400 M), or when
its decoded array and a float32 copy would not fit in the memory available now (`available_memory`:
Linux's MemAvailable, capped by HDM_MEMORY_LIMIT, e.g. 8G). Pixels are OpenCV's (cv2.imdecode), as the
metric presets' community scripts read them; only TIFFs that OpenCV cannot decode (single-channel
float, an orientation tag) are read as PIL reads them. Every failure is OSError with one line naming
the file as hdm.errors.shown prints it; hdm-predict then goes on with the other files.
"""
import contextlib
import io
import os
import re
import tempfile

import cv2
import numpy as np

from hdm.errors import shown
from hdm.files import atomic_write
from hdm.image_format import ImageDataError, bytes_reader, file_reader, judge, read_header

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 400_000_000  # a 69-byte PNG can claim 65535 x 65535; 8K is 33 M
UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}  # suffixes of HDM_MAX_PIXELS and HDM_MEMORY_LIMIT
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our errors name the file instead


def is_image(name):
    """Whether a folder's file is taken as an image (by its extension; a file given explicitly is decoded
    whatever its name)."""
    return os.fsdecode(name).lower().endswith(IMAGE_EXTENSIONS)


def images_in(folder, recursive=False):
    """Sorted paths of the image files in `folder` (and its sub-folders when `recursive`); a clear
    error if it is missing."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{shown(folder)}: no such folder (expected a folder of images)")
    if not recursive:
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if is_image(n)]
    return sorted(os.path.join(top, n) for top, _, names in os.walk(folder) for n in names if is_image(n))


def _environment_number(key):
    """The whole number environment variable `key` gives (a K, M or G suffix multiplies by 1024 each), or None."""
    text = os.environ.get(key, "").strip()
    if not text:
        return None
    found = re.fullmatch(r"(\d+)\s*(?:([KMG])i?)?B?", text, re.IGNORECASE)
    if not found:
        raise ValueError(f"{key}={text!r}: expected a whole number, e.g. 400000000 or 8G")
    return int(found.group(1)) * UNITS[(found.group(2) or "").upper()]


def max_pixels():
    """Images with this many pixels or more are refused before decoding (HDM_MAX_PIXELS, default 400 M)."""
    limit = _environment_number("HDM_MAX_PIXELS")
    return DEFAULT_MAX_PIXELS if limit is None else limit


def available_memory():
    """Bytes of memory available now: Linux's MemAvailable, else the free physical pages, capped by
    HDM_MEMORY_LIMIT (bytes, or with a K, M or G suffix); None when nothing says (no check then)."""
    available = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", "rb") as f:
            available = next((int(line.split()[1]) * 1024 for line in f if line.startswith(b"MemAvailable:")), None)
    if available is None:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    cap = _environment_number("HDM_MEMORY_LIMIT")
    return cap if available is None else available if cap is None else min(available, cap)


@contextlib.contextmanager
def _named(path):
    """ImageDataError from hdm.image_format as OSError, with the file's name in front (as shown)."""
    try:
        yield
    except ImageDataError as err:
        raise OSError(f"{shown(path)}: {err}") from err


def _size(n):
    """Bytes as MiB or GiB, for messages."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _check_pixels(header, path):
    """OSError when the image has max_pixels() pixels or more."""
    h, w, limit = header.height, header.width, max_pixels()
    if h * w >= limit:
        raise OSError(f"{shown(path)}: {w}x{h} = {h * w / 1e6:.0f} Mpixels, at or above the limit of "
                      f"{limit / 1e6:.0f} Mpixels (set HDM_MAX_PIXELS to allow it)")


def _admit(read, size, path, grey):
    """The header of the image behind `read` (`size` bytes), after the checks that decode nothing: a
    known format, a sane header, under the pixel limit, and room in memory to decode it."""
    with _named(path):
        header = read_header(read)
    _check_pixels(header, path)
    h, w = header.height, header.width
    samples = h * w * (1 if grey else 3)
    needed = size + samples * max(1, header.bits // 8) + samples * 4  # the file, the decoded array, float32
    available = available_memory()
    if available is not None and needed > available:
        raise OSError(f"{shown(path)}: {w}x{h} needs about {_size(needed)} to read, more than the "
                      f"{_size(available)} of memory available now; free memory first (hdm-predict --tile lowers the "
                      f"model's memory, not this: the whole image is read and its output written whole)")
    return header


def _open(path):
    """The file open for reading, or OSError naming it."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise OSError(f"{shown(path)}: no such file") from None
    except IsADirectoryError:
        raise OSError(f"{shown(path)}: a folder, expected an image file") from None
    except OSError as err:
        raise OSError(f"{shown(path)}: cannot be read ({err.strerror or err})") from err


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


def _decode(data, header, path, grey):
    """RGB (H, W, 3) or grey (H, W) pixels as stored (uint8, uint16 or float) of an admitted image's bytes."""
    with _named(path):
        data = judge(bytes_reader(data), len(data), header) or data
    flags = (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) | cv2.IMREAD_ANYDEPTH
    try:
        with quiet_stderr():
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        img = None
    if img is None and header.format == "TIFF":
        return _pil_decode(data, path, grey)
    if img is None:
        raise OSError(f"{shown(path)}: not a readable image (corrupt {header.format} data)")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _pil_decode(data, path, grey):
    """A TIFF that OpenCV cannot decode, as PIL reads it (its orientation applied, as OpenCV would)."""
    from PIL import Image, ImageOps

    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit applies (max_pixels)
    try:
        with quiet_stderr(), Image.open(io.BytesIO(data), formats=["TIFF"]) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("F", "I", "I;16", "I;16B", "I;16L", "I;16N"):  # float32, int32 (refused), uint16
                img = np.asarray(im).astype({"F": np.float32, "I": np.int32}.get(im.mode, np.uint16))
            else:
                img = np.asarray(im.convert("L" if grey and im.mode in ("1", "L", "LA") else "RGB"))
    except Exception as err:  # PIL's parsers raise many types on corrupt data; each is one line here
        raise OSError(f"{shown(path)}: not a readable image (a TIFF that neither OpenCV nor PIL decodes: "
                      f"{type(err).__name__})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    if grey and img.ndim == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if not grey and img.ndim == 2 else img


def read_pixels(path, grey=False):
    """The pixels of an image file as stored: RGB (H, W, 3), or (H, W) with `grey`, uint8, uint16 or
    float. OSError with one line naming the file when it cannot be read, is not a complete image of a
    known format, or is refused before decoding (pixel limit, memory)."""
    with _open(path) as f:
        header = _admit(file_reader(f), os.fstat(f.fileno()).st_size, path, grey)
        f.seek(0)
        data = f.read()
    return _decode(data, header, path, grey)


def decode_pixels(data, name, grey=False):
    """read_pixels for an image's bytes held in memory (an upload); `name` is what messages call it."""
    data = bytes(data)
    return _decode(data, _admit(bytes_reader(data), len(data), name, grey), name, grey)


def image_header(path):
    """(height, width, colour) of an image file as read_image would return it (EXIF orientations that
    transpose it swap height and width; colour False for grey images), from its header and a cheap check
    of its structure, no pixel decoded (see hdm.image_format.judge). OSError naming the file when it is
    not a complete image of a known format or has HDM_MAX_PIXELS pixels or more."""
    with _open(path) as f, _named(path):
        read = file_reader(f)
        header = read_header(read)
        _check_pixels(header, path)  # before the structure check, which may inflate a PNG's data
        judge(read, os.fstat(f.fileno()).st_size, header, quick=True)
    return header.height, header.width, header.colour


def _to_unit(img, path):
    """uint8 / 255, uint16 / 65535, float as it is, as float32 in [0, 1]; non-finite pixels are an error,
    and float values outside [0, 1] are clipped."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype.kind != "f":
        raise OSError(f"{shown(path)}: {img.dtype} samples are not supported (expected 8 or 16-bit unsigned "
                      f"integers, or floats)")
    img = img.astype(np.float32)
    bad = int(np.size(img) - np.count_nonzero(np.isfinite(img)))
    if bad:
        raise OSError(f"{shown(path)}: {bad} non-finite pixel values (NaN or inf); expected finite values in "
                      f"[0, 1]")
    return np.clip(img, 0.0, 1.0)


def _rgb(img, path):
    return img if img.dtype == np.uint8 else _to_unit(img, path)


def read_image(path):
    """RGB float32 (H, W, 3) in [0, 1]; a clear error naming the file otherwise.

    Grey images are expanded to RGB, an alpha channel is dropped, 16-bit images are scaled by 65535,
    float images (TIFF) are taken as values in [0, 1] (clipped; NaN or inf is an error), CMYK JPEGs
    are converted, and the EXIF orientation is applied (OpenCV's IMREAD_COLOR), the same for inputs
    and targets."""
    return _to_unit(read_pixels(path), path)


def read_rgb(path):
    """RGB (H, W, 3) as stored: uint8 for 8-bit images (a quarter of float32's memory), else float32 in
    [0, 1] as read_image."""
    return _rgb(read_pixels(path), path)


def decode_rgb(data, name):
    """read_rgb for an image's bytes held in memory (an upload); `name` is what messages call it."""
    return _rgb(decode_pixels(data, name), name)


def read_gray(path):
    """Single-channel float32 (H, W, 1) in [0, 1] (e.g. a transmission map)."""
    return _to_unit(read_pixels(path, grey=True), path)[..., None]


def ensure_writable(folder):
    """Create `folder` if needed and check that files can be written there (one clear error if not)."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
    except OSError as err:
        raise OSError(f"{shown(folder)}: output folder is not writable ({err.strerror or err})") from err


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
    try:
        with quiet_stderr():
            ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img)
    except cv2.error:
        ok = False
    if not ok:
        raise OSError(f"{shown(name) if name is not None else 'image'}: could not encode image as {ext}")
    return buf.tobytes()


def write_image(path, img):
    """Write an RGB (H, W, 3) or grey (H, W) image, float in [0, 1] or uint8, in the format of the name's
    extension (PNG without one), atomically (nothing partial is left on a write error, which names the
    file). Any name works: the image is encoded in memory and only Python opens the file."""
    path = os.fsdecode(path)
    data = encode_image(img, os.path.splitext(path)[1] or ".png", path)
    with atomic_write(path) as f:
        f.write(data)
