"""What an image file's bytes say before any pixel is decoded: the format (from magic numbers, never from
the file name), the size, colour and sample type from the header, and whether the data are complete. Pure
Python (struct, zlib, re): hostile bytes can only raise ImageDataError here. Decoding is hdm.image_io.

Sample types: the header says which array type the decoders give (Header.sample), and refuses, before any
pixel is decoded, the kinds no rule here converts:
- PNG, BMP, WebP: uint8 (uint16 for a 16-bit PNG). JPEG: uint8; other precisions (12-bit) are refused.
- TIFF of grey or RGB samples (MinIsBlack, RGB) of 8 bits or more: decoded to the samples themselves
  (Header.raw): uint8, uint16, float16, float32, float64, with 1 or 2 samples per pixel (grey, alpha) or
  3 or 4 (RGB, alpha). Signed or 32/64-bit integers, complex and other floats, other sample counts are
  refused; so are compressed TIFFs of float16 samples, and compressed ones of 16-bit or float samples that
  are grey with alpha or stored in separate planes, which only the uncompressed reader takes (hdm.image_io;
  libtiff through OpenCV decodes them wrong or not at all).
- Any other TIFF (palette, bilevel or 2/4-bit grey, MinIsWhite, CMYK, YCbCr, CIELab): rendered to uint8
  by libtiff; such TIFFs of more than 8 bits a sample, of fewer with more than one sample a pixel, or not
  of unsigned integers, are refused.

The parsers read through `read(offset, n) -> bytes` (fewer bytes at the end of the data), so the header
check before training reads a few bytes of each file, and the full read works on the bytes it holds.

Completeness, per format:
- PNG: complete when its chunks run to IEND (libpng then refuses image data that stop short while it
  decodes). Without IEND, the image data are inflated: when their compressed stream is whole and yields
  every row the image is readable (`judge` returns the stream closed with IEND, which decoders accept),
  otherwise it is truncated.
- JPEG: complete when the walk over its segments and entropy-coded scans reaches the end-of-image marker
  (libjpeg fills a cut scan with grey and says nothing, so the decoder cannot be trusted with this).
- BMP: uncompressed pixel rows must all be in the file.
- TIFF: libtiff refuses strips that are not in the file while it decodes.
- WebP: the file must hold the size its RIFF header gives (libwebp refuses cut data too).
"""
import collections
import struct
import zlib

from hdm import jpeg_markers
from hdm.errors import ImageDataError  # noqa: F401 - raised here, and imported from here by the readers

FORMATS = "PNG, JPEG, BMP, TIFF or WebP"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap height and width
TIFF_TAGS = {256: "width", 257: "height", 258: "bits", 259: "compression", 262: "photometric", 274: "orientation",
             277: "samples", 284: "planar", 339: "sample_format"}
TIFF_SAMPLE_NAMES = {1: "uint", 2: "int", 3: "float", 4: "void", 5: "complex-int", 6: "complex"}  # SampleFormat
TIFF_RAW = {(1, 8): "uint8", (1, 16): "uint16", (3, 16): "float16", (3, 32): "float32", (3, 64): "float64"}
TIFF_PHOTOMETRIC = {0: "MinIsWhite", 1: "grey", 2: "RGB", 3: "palette", 4: "mask", 5: "CMYK", 6: "YCbCr",
                    8: "CIELab"}
TIFF_READ = ("TIFFs of uint8 or uint16 samples, or float16, float32 or float64, grey or RGB with an optional "
             "alpha; palette, CMYK, YCbCr or CIELab TIFFs of 8 bits or fewer a sample")
BMP_INFO_SIZES = (12, 40, 52, 56, 64, 108, 124)
BLOCK = jpeg_markers.BLOCK  # bytes read at a time

Header = collections.namedtuple("Header", "format height width colour sample raw")
Header.__doc__ = """An image's header: format name, height and width as decoders return them (EXIF orientations
that transpose the image swap them), colour (False for grey images), the NumPy type of the decoded samples
(`sample`, see the module doc), and `raw`: for a TIFF decoded to its samples, a Raw; else None."""
Raw = collections.namedtuple("Raw", "samples compressed orientation")
Raw.__doc__ = """How a TIFF of grey or RGB samples is stored: samples per pixel (1 to 4), whether its data are
compressed, and its orientation tag (1 to 8, as EXIF's), which the decoder of samples does not apply itself."""


def bytes_reader(data):
    """read(offset, n) over bytes held in memory."""
    return lambda offset, n: data[offset:offset + n] if 0 <= offset else b""


def file_reader(f):
    """read(offset, n) over an open binary file."""
    def read(offset, n):
        if not 0 <= offset < 1 << 62:  # an offset from a corrupt header
            return b""
        f.seek(offset)
        return f.read(n)
    return read


def sniff(head):
    """The format of data starting with `head` (their first 32 bytes), or None."""
    if head.startswith(PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack("<I", head[14:18])[0] in BMP_INFO_SIZES:
        return "BMP"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def read_header(read):
    """The Header of the data behind `read`; ImageDataError when they are not an image of a known format
    or the header is cut or inconsistent."""
    fmt = sniff(read(0, 32))
    if fmt is None:
        raise ImageDataError(f"not a readable image (its bytes are not {FORMATS})")
    return {"PNG": _png_header, "JPEG": _jpeg_header, "BMP": _bmp_header, "TIFF": _tiff_header,
            "WEBP": _webp_header}[fmt](read)


def judge(read, size, header, quick=False):
    """Whether the data are complete (see the module doc): None when they are to be decoded as they are,
    the bytes to decode instead for a PNG with every row but no IEND, ImageDataError when they stop early.
    quick: a JPEG that ends with its end-of-image marker passes without walking its scans (the header
    check before work; the full read always walks)."""
    if header.format == "PNG":
        return None if read(size - 12, 12) == PNG_IEND else _judge_png(read)
    if header.format == "JPEG" and not (quick and read(size - 2, 2) == b"\xff\xd9"):
        markers = list(jpeg_markers.markers(read))
        if not any(marker == jpeg_markers.EOI for _, marker, _ in markers):
            raise ImageDataError("truncated JPEG (the data stop before the end-of-image marker of its last scan)")
        jpeg_markers.judge_progression(read, markers)
    if header.format == "BMP":
        _judge_bmp(read, size)
    if header.format == "WEBP":
        riff = 8 + _unpack("<I", read(4, 4), "WebP header")[0]
        if size < riff:
            raise ImageDataError(f"truncated WebP ({size:,} bytes, its RIFF header gives {riff:,})")
    return None


def _unpack(fmt, data, what):
    if len(data) < struct.calcsize(fmt):
        raise ImageDataError(f"not a readable image (its {what} is missing or cut short)")
    return struct.unpack(fmt, data[:struct.calcsize(fmt)])


def _checked(fmt, width, height, colour, sample="uint8", raw=None):
    if width <= 0 or height <= 0:
        raise ImageDataError(f"not a readable image (its {fmt} header gives {width}x{height} pixels)")
    return Header(fmt, height, width, colour, sample, raw)


# PNG

def _png_chunks(read):
    """(position, type, length) of each chunk whose header is in the data, in order, up to IEND."""
    pos = 8
    while True:
        head = read(pos, 8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)
        if length >= 1 << 31:
            raise ImageDataError(f"not a readable image (a PNG chunk at byte {pos:,} claims {length:,} bytes)")
        yield pos, kind, length
        if kind == b"IEND":
            return
        pos += 12 + length


def _png_header(read):
    _, kind, width, height, bits, colour_type, _, _, _ = _unpack(">I4sIIBBBBB", read(8, 25), "PNG header")
    if kind != b"IHDR" or colour_type not in PNG_CHANNELS:
        raise ImageDataError("not a readable image (PNG without a valid IHDR header)")
    orientation = 1
    for pos, kind, _ in _png_chunks(read):
        if kind == b"IDAT":
            break
        if kind == b"eXIf":
            orientation = _exif_orientation(read, pos + 8)
    if orientation in TRANSPOSED:
        width, height = height, width
    return _checked("PNG", width, height, colour_type in (2, 3, 6), "uint16" if bits == 16 else "uint8")


def _png_raw_size(read):
    """Bytes of filtered scanlines the image data of a PNG inflate to (interlaced passes included)."""
    width, height = _unpack(">II", read(16, 8), "PNG header")
    bits, colour_type, _, _, interlace = _unpack(">BBBBB", read(24, 5), "PNG header")
    sample_bits = bits * PNG_CHANNELS[colour_type]
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w > 0 and h > 0:
            total += h * (1 + (w * sample_bits + 7) // 8)
    return total


def _judge_png(read):
    """A PNG without IEND at its end: None when IEND comes later (data appended), the stream closed
    with IEND when its image data yield every row, ImageDataError otherwise."""
    spans, first = [], None
    for pos, kind, length in _png_chunks(read):
        if kind == b"IEND":
            return None
        if kind == b"IDAT":
            first = pos if first is None else first
            spans.append((pos + 8, length))
    needed = _png_raw_size(read)
    inflate, got = zlib.decompressobj(), 0
    try:
        for start, length in spans:
            offset = start
            while offset < start + length and not inflate.eof and got <= needed:
                data = read(offset, min(BLOCK, start + length - offset))
                if not data:
                    break
                offset += len(data)
                while data and not inflate.eof and got <= needed:
                    got += len(inflate.decompress(data, BLOCK))
                    data = inflate.unconsumed_tail
    except zlib.error as err:
        raise ImageDataError(f"not a readable image (corrupt PNG image data: {err})") from err
    if got < needed:
        raise ImageDataError(f"truncated PNG (its image data give {got:,} of the {needed:,} bytes of its rows)")
    if got == needed and not inflate.eof:
        raise ImageDataError("truncated PNG (its image data stop before the end of their compressed stream)")
    idat = b"".join(read(start, length) for start, length in spans)
    return read(0, first) + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(
        ">I", zlib.crc32(b"IDAT" + idat)) + PNG_IEND


# JPEG

def _jpeg_header(read):
    orientation = 1
    for pos, marker, _ in jpeg_markers.markers(read):
        if marker in JPEG_SOF:
            bits, height, width, components = _unpack(">BHHB", read(pos + 4, 6), "JPEG frame header")
            if bits != 8:
                raise ImageDataError(f"a JPEG of {bits}-bit samples, which is not read here (expected 8-bit)")
            if orientation in TRANSPOSED:
                width, height = height, width
            return _checked("JPEG", width, height, components >= 3)
        if marker == 0xE1 and read(pos + 4, 6) == b"Exif\0\0":
            orientation = _exif_orientation(read, pos + 10)
        if marker in (jpeg_markers.SOS, jpeg_markers.EOI):
            break
    raise ImageDataError("not a readable image (JPEG without a frame header)")


# BMP

def _bmp_layout(read):
    """(width, height, bits per pixel, compression, palette entries, palette entry size, pixel offset)."""
    offset, info = _unpack("<II", read(10, 8), "BMP header")
    if info == 12:
        width, height, _, bpp = _unpack("<HHHH", read(18, 8), "BMP header")
        return width, height, bpp, 0, 1 << bpp if bpp <= 8 else 0, 3, offset
    width, height, _, bpp, compression = _unpack("<iiHHI", read(18, 16), "BMP header")
    used = _unpack("<I", read(46, 4), "BMP header")[0]
    return width, height, bpp, compression, (used or 1 << bpp) if bpp <= 8 else 0, 4, offset


def _bmp_header(read):
    width, height, bpp, _, entries, entry_size, _ = _bmp_layout(read)
    info = _unpack("<I", read(14, 4), "BMP header")[0]
    palette = read(14 + info, min(entries, 256) * entry_size)
    colour = bpp > 8 or any(len(set(palette[i:i + 3])) > 1 for i in range(0, len(palette), entry_size))
    return _checked("BMP", width, abs(height), colour)


def _judge_bmp(read, size):
    width, height, bpp, compression, _, _, offset = _bmp_layout(read)
    if compression in (0, 3, 6):  # uncompressed rows (bit fields included)
        needed = offset + (width * bpp + 31) // 32 * 4 * abs(height)
        if size < needed:
            raise ImageDataError(f"truncated BMP ({size:,} bytes, its rows need {needed:,})")


# TIFF (also the structure of EXIF data)

def _tiff_tags(read, base):
    """{name: first value} of the TIFF_TAGS in the first directory of the TIFF structure at `base`."""
    order = {b"II": "<", b"MM": ">"}.get(read(base, 2))
    if order is None:
        raise ImageDataError("not a readable image (TIFF data without a byte order mark)")
    magic = _unpack(order + "H", read(base + 2, 2), "TIFF header")[0]
    if magic == 42:
        count_fmt, entry_fmt, first = "H", "HHI4s", _unpack(order + "I", read(base + 4, 4), "TIFF header")[0]
    elif magic == 43:  # BigTIFF
        count_fmt, entry_fmt, first = "Q", "HHQ8s", _unpack(order + "Q", read(base + 8, 8), "TIFF header")[0]
    else:
        raise ImageDataError(f"not a readable image (TIFF data with magic number {magic})")
    count = _unpack(order + count_fmt, read(base + first, 8), "TIFF directory")[0]
    entry = struct.calcsize(order + entry_fmt)
    entries = read(base + first + struct.calcsize(count_fmt), min(count, 4096) * entry)
    tags = {}
    for i in range(0, len(entries) - entry + 1, entry):
        tag, kind, n, value = struct.unpack(order + entry_fmt, entries[i:i + entry])
        item = {3: "H", 4: "I", 16: "Q"}.get(kind)
        if tag in TIFF_TAGS and item and n:
            if n * struct.calcsize(item) > len(value):  # the values are elsewhere: value holds their offset
                value = read(base + struct.unpack(order + ("I" if len(value) == 4 else "Q"), value)[0], 8)
            tags[TIFF_TAGS[tag]] = _unpack(order + item, value, "TIFF value")[0]
    return tags


def _exif_orientation(read, base):
    """The orientation of EXIF data at `base` (1, as decoders take it, when the EXIF data are unreadable)."""
    try:
        return _tiff_tags(read, base).get("orientation", 1)
    except ImageDataError:
        return 1


def _tiff_header(read):
    tags = _tiff_tags(read, 0)
    width, height = tags.get("width", 0), tags.get("height", 0)
    if tags.get("orientation", 1) in TRANSPOSED:
        width, height = height, width
    sample, raw = _tiff_samples(tags)
    return _checked("TIFF", width, height, tags.get("samples", 1) >= 3 or tags.get("photometric") == 3, sample, raw)


def _tiff_samples(tags):
    """(sample, raw) of a TIFF (see the module doc); ImageDataError naming the sample type for a TIFF whose
    samples no rule here converts."""
    bits, kind, samples = tags.get("bits", 1), tags.get("sample_format", 1), tags.get("samples", 1)
    photometric = tags.get("photometric", 1 if samples < 3 else 2)
    name = f"{TIFF_SAMPLE_NAMES.get(kind, f'format-{kind}-')}{bits}"
    if photometric in (1, 2) and bits >= 8:
        sample, expected = TIFF_RAW.get((kind, bits)), (1, 2) if photometric == 1 else (3, 4)
        if sample is None or samples not in expected:
            raise ImageDataError(f"a TIFF of {name} samples ({samples} a pixel, {TIFF_PHOTOMETRIC[photometric]}), "
                                 f"which is not read here (it reads {TIFF_READ})")
        compressed = tags.get("compression", 1) != 1
        separate = tags.get("planar", 1) == 2 and samples > 1  # each sample in its own plane
        if compressed and (sample == "float16" or sample != "uint8" and (samples == 2 or separate)):
            raise ImageDataError(f"a compressed TIFF of {name} samples ({samples} a pixel, "
                                 f"{TIFF_PHOTOMETRIC[photometric]}), which is read here only uncompressed (save it "
                                 f"without compression)")
        return sample, Raw(samples, compressed, tags.get("orientation", 1))
    if kind != 1 or bits > 8 or bits < 8 and samples > 1:
        layout = TIFF_PHOTOMETRIC.get(photometric, f"photometric-{photometric}")
        raise ImageDataError(f"a TIFF of {name} samples ({samples} a pixel, {layout}), which is not read here (it "
                             f"reads {TIFF_READ})")
    return "uint8", None


# WebP

def _webp_header(read):
    size, orientation, pos = None, 1, 12
    while True:  # the chunks: the canvas or frame size first, EXIF data after the image
        head = read(pos, 18)
        if len(head) < 8:
            break
        kind, length = struct.unpack("<4sI", head[:8])
        if kind == b"VP8X" and len(head) == 18:
            size = (1 + int.from_bytes(head[12:15], "little"), 1 + int.from_bytes(head[15:18], "little"))
        elif kind == b"VP8 " and size is None and len(head) == 18:
            size = (int.from_bytes(head[14:16], "little") & 0x3FFF, int.from_bytes(head[16:18], "little") & 0x3FFF)
        elif kind == b"VP8L" and size is None and len(head) >= 13:
            bits = int.from_bytes(head[9:13], "little")
            size = (1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF))
        elif kind == b"EXIF":
            orientation = _exif_orientation(read, pos + (14 if read(pos + 8, 6) == b"Exif\0\0" else 8))
        pos += 8 + length + (length & 1)
    if size is None:
        raise ImageDataError("not a readable image (WebP without a frame header)")
    width, height = size[::-1] if orientation in TRANSPOSED else size
    return _checked("WEBP", width, height, True)
