"""Image files <-> RGB arrays (float32 in [0, 1], or uint8), with NumPy and OpenCV (tifffile and PIL for
some TIFFs): the tools that run without torch (hdm-predict --onnx) read and write images with it too.
Tensors: hdm.data.io.

One reader: every read (datasets, hdm-predict, test.py, hdm-evaluate, hdm-serve's uploads) reads the
file's bytes in Python and decodes them from memory, so no file name ever reaches a C library and any
name works (bytes that are not UTF-8, newlines). The format is decided from the bytes, never from the
name; hdm.image_format parses the header, says which sample type the decoders give (refusing the ones
no rule converts) and judges completeness. Before decoding, an image is refused (OSError, one line
naming the file) when it has HDM_MAX_PIXELS pixels or more (default 400,000,000), or when its decoded
array and a float32 copy would not fit in the memory available now (`available_memory`: Linux's
MemAvailable, capped by HDM_MEMORY_LIMIT, e.g. 8G; hdm.environment parses both).

Decoders: pixels are OpenCV's (cv2.imdecode, IMREAD_COLOR or IMREAD_GRAYSCALE), as the metric presets'
community scripts read them, except for TIFFs of grey or RGB samples (hdm.image_format's Header.raw),
which are decoded to their samples: by tifffile when uncompressed, else by libtiff through OpenCV
(IMREAD_UNCHANGED), or by PIL for 8-bit ones with alpha (libtiff multiplies their colour by the alpha).
A TIFF that OpenCV cannot decode (some tiled ones) is read as PIL reads it. Then one rule, `_pixels`,
for every decoder: the array must have the header's sample type; floats (16, 32 or 64 bits) become
float32 values clipped to [0, 1] (NaN or inf is an error); alpha is dropped; grey is expanded to RGB
(or colour made grey as OpenCV does, for read_gray). Every failure is OSError with one line naming the
file as hdm.errors.shown prints it (an exception of a decoder never escapes unnamed); hdm-predict then
goes on with the other files.
"""
import contextlib
import io
import os
import re
import tempfile

import cv2
import numpy as np

from hdm import environment
from hdm.errors import shown
from hdm.files import atomic_write, open_input
from hdm.image_format import ImageDataError, bytes_reader, file_reader, judge, read_header

JPEG_EXTRANEOUS = re.compile(r"Corrupt JPEG data: ([0-9]+) extraneous bytes before marker 0x([0-9a-f]{2})", re.I)
JPEG_BENIGN = ("Warning: unknown JFIF revision number", "Invalid SOS parameters for sequential JPEG",
               "Warning: thumbnail image size does not match data length")
EXTRANEOUS_BYTES = 1024
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
EXIF_ORIENTATIONS = {  # EXIF orientation -> the array operation that shows the image upright
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a[::-1].swapaxes(0, 1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: a[:, ::-1].swapaxes(0, 1)}
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


def max_pixels():
    """Images with this many pixels or more are refused before decoding (HDM_MAX_PIXELS, default 400,000,000)."""
    return environment.value("HDM_MAX_PIXELS")


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
    cap = environment.value("HDM_MEMORY_LIMIT")
    return cap if available is None else available if cap is None else min(available, cap)


@contextlib.contextmanager
def _named(path):
    """ImageDataError from hdm.image_format as OSError, with the file's name in front (as shown)."""
    try:
        yield
    except ImageDataError as err:
        raise OSError(f"{shown(path)}: {err}") from err


def byte_count(n):
    """Bytes for a message, exact at every scale: '512 bytes', '36,912 bytes (36.0 KiB)'."""
    if n < 1024:
        return f"{n:,} byte{'' if n == 1 else 's'}"
    power = min(len(BYTE_UNITS), (n.bit_length() - 1) // 10)
    return f"{n:,} bytes ({n / 1024 ** power:.1f} {BYTE_UNITS[power - 1]})"


def _check_pixels(header, path):
    """OSError when the image has max_pixels() pixels or more."""
    h, w, limit = header.height, header.width, max_pixels()
    if h * w >= limit:
        raise OSError(f"{shown(path)}: {w}x{h} = {h * w:,} pixels, at or above the limit of {limit:,} pixels "
                      f"(set HDM_MAX_PIXELS to allow it)")


def _admit(read, size, path, grey):
    """The header of the image behind `read` (`size` bytes), after the checks that decode nothing: a
    known format and sample type, a sane header, under the pixel limit, and room in memory to decode it."""
    with _named(path):
        header = read_header(read)
    _check_pixels(header, path)
    h, w = header.height, header.width
    decoded = header.raw.samples if header.raw else 1 if grey else 3
    needed = size + h * w * (decoded * np.dtype(header.sample).itemsize + (1 if grey else 3) * 4)  # + float32
    available = available_memory()
    if available is not None and needed > available:
        raise OSError(f"{shown(path)}: {w}x{h} needs about {byte_count(needed)} to read, more than the "
                      f"{byte_count(available)} of memory available now; free memory first (hdm-predict --tile "
                      f"lowers the model's memory, not this: the whole image is read and its output written whole)")
    return header


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C libraries print on file descriptor 2 while they decode or encode (libpng's "libpng
    error" lines, libjpeg's warnings); yields a list that holds those lines after the block. Our own
    one-line errors say what went wrong."""
    printed = []
    try:
        saved = os.dup(2)
    except OSError:
        yield printed
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            printed += sink.read(1 << 16).decode("utf-8", "replace").splitlines()


def _jpeg_verdict(printed):
    """ImageDataError when libjpeg warned about the image's data (a scan cut, even with an end marker
    appended; data it could not decode; scans out of sequence): it then fills what it lacks with grey, or
    decodes garbage, without an error. Accepted: warnings about metadata (JPEG_BENIGN) and up to
    EXTRANEOUS_BYTES stray bytes before a marker of the header (common in camera files); stray bytes
    before the end or a restart marker mean a scan's data did not decode to its end."""
    for line in (line.strip() for line in printed):
        extraneous = JPEG_EXTRANEOUS.search(line)
        if extraneous and int(extraneous.group(1)) <= EXTRANEOUS_BYTES and \
                not 0xD0 <= int(extraneous.group(2), 16) <= 0xD9:
            continue
        if line and not line.startswith(JPEG_BENIGN):
            raise ImageDataError(f"corrupt JPEG data (the decoder: {line[:120]})")


def _decode(data, header, path, grey):
    """Grey (H, W) or RGB (H, W, 3) pixels, uint8, uint16 or float32 in [0, 1], of an admitted image's bytes."""
    with _named(path):
        data = judge(bytes_reader(data), len(data), header) or data
        try:
            with quiet_stderr() as printed:
                img = _samples(data, header) if header.raw else _rendered(data, header, grey)
            if header.format == "JPEG":
                _jpeg_verdict(printed)
            return _pixels(img, header, grey)
        except cv2.error as err:  # a net: OpenCV's own exceptions never escape unnamed
            raise ImageDataError(f"not a readable image (OpenCV: {str(err).strip().splitlines()[-1]})") from err


def _rendered(data, header, grey):
    """The image as OpenCV renders it (IMREAD_COLOR or IMREAD_GRAYSCALE, any depth), in RGB order; PIL's
    rendering for a TIFF that OpenCV does not decode."""
    flags = (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) | cv2.IMREAD_ANYDEPTH
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is not None:
        return img if img.ndim == 2 else img[..., ::-1]
    if header.format == "TIFF":
        return _pil_decode(data)
    raise ImageDataError(f"not a readable image (corrupt {header.format} data)")


def _samples(data, header):
    """A TIFF's samples (H, W[, C]) in RGB(A) order, upright (see the module doc for which decoder)."""
    raw = header.raw
    if not raw.compressed:
        return EXIF_ORIENTATIONS.get(raw.orientation, lambda a: a)(_tifffile_decode(data))
    if raw.samples in (2, 4) and header.sample == "uint8":
        return _pil_decode(data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # libtiff applies the orientation
    if img is None:
        return _pil_decode(data)
    if img.ndim == 3 and img.shape[2] >= 3:
        img = np.concatenate([img[..., 2::-1], img[..., 3:]], axis=2)  # OpenCV's BGR(A) order
    return img


def _tifffile_decode(data):
    """The samples of the first image of an uncompressed TIFF, as stored (tifffile; no orientation applied)."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            if any(offset + count > len(data) for offset, count in zip(page.dataoffsets, page.databytecounts)):
                raise ImageDataError("truncated TIFF (its image data end after the file)")
            img = page.asarray()
            return np.moveaxis(img, 0, -1) if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE else img
    except ImageDataError:
        raise
    except Exception as err:  # tifffile's parsers raise many types on corrupt data; each is one line here
        raise ImageDataError(f"not a readable image (corrupt TIFF data: {type(err).__name__})") from err


def _pil_decode(data):
    """A TIFF as PIL reads it (its orientation applied, as OpenCV would): grey, grey and alpha, RGB or RGBA
    samples as stored (8 or 16-bit grey, float32 grey), every other kind rendered to RGB."""
    from PIL import Image, ImageOps

    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit applies (max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode == "1":
                im = im.convert("L")
            elif im.mode not in ("L", "LA", "RGB", "RGBA", "F", "I;16", "I;16B", "I;16L", "I;16N"):
                im = im.convert("RGB")
            img = np.asarray(im)
    except Exception as err:  # PIL's parsers raise many types on corrupt data; each is one line here
        raise ImageDataError(f"not a readable image (a TIFF that neither OpenCV nor PIL decodes: "
                             f"{type(err).__name__})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    return img.astype(img.dtype.newbyteorder("="), copy=False)


def _pixels(img, header, grey):
    """The one rule for decoded samples (H, W) or (H, W, C) of the header's sample type, in RGB(A) order:
    alpha dropped, floats as float32 in [0, 1] (clipped; NaN or inf refused), then grey (H, W) (colour made
    grey as OpenCV does, BT.601) or RGB (H, W, 3) (grey expanded)."""
    if img.dtype != np.dtype(header.sample) or img.shape[:2] != (header.height, header.width) or \
            img.ndim not in (2, 3) or img.ndim == 3 and not 1 <= img.shape[2] <= 4:
        raise ImageDataError(f"not a readable image (its header gives {header.width}x{header.height} "
                             f"{header.sample} samples, its data decode to {img.dtype} {'x'.join(map(str, img.shape))})")
    if img.ndim == 3:
        img = img[..., 0] if img.shape[2] <= 2 else img[..., :3]
    if img.dtype.kind == "f":
        bad = int(img.size - np.count_nonzero(np.isfinite(img)))
        if bad:
            raise ImageDataError(f"{bad:,} non-finite pixel values (NaN or inf); expected finite values in [0, 1]")
        img = np.clip(img, 0, 1).astype(np.float32)
    img = np.ascontiguousarray(img)
    if grey:
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)


def read_pixels(path, grey=False):
    """The pixels of an image file: RGB (H, W, 3), or (H, W) with `grey`; uint8 or uint16 as stored, or
    float32 in [0, 1] for float samples (see `_pixels`). OSError with one line naming the file when it
    cannot be read, is not a complete image of a known format and sample type, or is refused before
    decoding (pixel limit, memory)."""
    with open_input(path) as f:
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
    with open_input(path) as f, _named(path):
        read = file_reader(f)
        header = read_header(read)
        _check_pixels(header, path)  # before the structure check, which may inflate a PNG's data
        judge(read, os.fstat(f.fileno()).st_size, header, quick=True)
    return header.height, header.width, header.colour


def _to_unit(img):
    """uint8 / 255 and uint16 / 65535 as float32; float32 (read_pixels has put it in [0, 1]) as it is."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    return img.astype(np.float32) / 65535.0 if img.dtype == np.uint16 else img


def unit_rgb(array, name="image"):
    """An RGB array (H, W, 3) given in memory, as float32 in [0, 1]: uint8 and uint16 scaled as image files
    are (by 255 and 65535), float values taken as they are. Another shape or sample type, or float
    values outside [0, 1] or not finite, is a ValueError of one line naming `name`."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{name}: expected RGB (H, W, 3), got shape {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        return _to_unit(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8, uint16 or float samples, got {array.dtype}")
    array = array.astype(np.float32)
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise ValueError(f"{name}: float values must be finite and lie in [0, 1], got [{array.min():g}, {array.max():g}] "
                         f"(divide 8-bit values by 255)")
    return array


def read_image(path):
    """RGB float32 (H, W, 3) in [0, 1]; a clear error naming the file otherwise.

    Grey images are expanded to RGB, an alpha channel is dropped, 8-bit images are scaled by 255 and
    16-bit ones by 65535, float images (TIFF: 16, 32 or 64 bits) are taken as values in [0, 1] (clipped;
    NaN or inf is an error), CMYK JPEGs are converted, and the EXIF orientation is applied, the same for
    inputs and targets. Sample types no rule converts (signed or 32-bit integers, complex) are refused
    from the header (hdm.image_format)."""
    return _to_unit(read_pixels(path))


def read_rgb(path):
    """RGB (H, W, 3) as stored: uint8 for 8-bit images (a quarter of float32's memory), else float32 in
    [0, 1] as read_image."""
    img = read_pixels(path)
    return img if img.dtype == np.uint8 else _to_unit(img)


def decode_rgb(data, name):
    """read_rgb for an image's bytes held in memory (an upload); `name` is what messages call it."""
    img = decode_pixels(data, name)
    return img if img.dtype == np.uint8 else _to_unit(img)


def read_gray(path):
    """Single-channel float32 (H, W, 1) in [0, 1] (e.g. a transmission map)."""
    return _to_unit(read_pixels(path, grey=True))[..., None]


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
    if hasattr(img, "detach"):  # a torch tensor (of any float type: bf16 too), without importing torch here
        img = img.detach().float().cpu().numpy()
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
