"""The one image reader (hdm.image_io over hdm.image_format): bytes in, array out, whatever the file is called;
format and completeness from the bytes; OpenCV's pixels; the limits before decoding; and a fuzz over real
files whose decodes run in a child process, so that a crash fails the test with its input instead of
killing pytest."""
import io
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data as photos

from hdm.errors import shown
from hdm.image_io import (
    BYTE_UNITS,
    available_memory,
    byte_count,
    decode_rgb,
    image_header,
    images_in,
    read_gray,
    read_image,
    read_pixels,
    read_rgb,
    write_image,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REALDATA = os.path.join(os.path.dirname(ROOT), "shared", "realdata")
# names a file may have: bytes that are not UTF-8, a newline, spaces, a leading dash, non-Latin scripts
STEMS = [b"caf\xe9", b"new\nline", b" two  spaces ", b"-leading-dash", "日本語の写真".encode(), "Ελληνικά".encode(),
         b"\xff\xfe"]
FUZZ_SEED = 20221010


def photo(name="astronaut", size=(48, 64)):
    img = getattr(photos, name)()
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def pil_bytes(img, fmt, **kwargs):
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def cv_bytes(img, ext, params=()):
    return cv2.imencode(ext, img[..., ::-1] if img.ndim == 3 else img, list(params))[1].tobytes()


def encodings():
    """{label: (bytes, extension)}: well-formed files of every format and variant the reader takes."""
    rgb, grey = photo(), photo("camera")
    deep = rgb.astype(np.uint16) * 257 + np.arange(64, dtype=np.uint16)[None, :, None]
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate on display: decoders return it 64 x 48
    return {
        "png": (cv_bytes(rgb, ".png"), ".png"),
        "png-grey": (pil_bytes(Image.fromarray(grey), "PNG"), ".png"),
        "png-rgba": (pil_bytes(Image.fromarray(np.dstack([rgb, grey])), "PNG"), ".png"),
        "png-16": (cv_bytes(deep, ".png"), ".png"),
        "png-grey-16": (cv_bytes(deep[..., 1], ".png"), ".png"),
        "png-palette": (pil_bytes(im.convert("P"), "PNG"), ".png"),
        "png-exif": (pil_bytes(im, "PNG", exif=exif), ".png"),
        "jpeg": (pil_bytes(im, "JPEG", quality=90), ".jpg"),
        "jpeg-progressive": (pil_bytes(im, "JPEG", progressive=True), ".jpg"),
        "jpeg-restarts": (cv_bytes(rgb, ".jpg", (cv2.IMWRITE_JPEG_RST_INTERVAL, 2)), ".jpg"),
        "jpeg-grey": (pil_bytes(Image.fromarray(grey), "JPEG"), ".jpg"),
        "jpeg-cmyk": (pil_bytes(im.convert("CMYK"), "JPEG", quality=95), ".jpg"),
        "jpeg-exif": (pil_bytes(im, "JPEG", exif=exif), ".jpg"),
        "bmp": (cv_bytes(rgb, ".bmp"), ".bmp"),
        "bmp-grey": (pil_bytes(Image.fromarray(grey), "BMP"), ".bmp"),
        "bmp-palette": (pil_bytes(im.convert("P"), "BMP"), ".bmp"),
        "tiff": (pil_bytes(im, "TIFF"), ".tif"),
        "tiff-lzw": (pil_bytes(im, "TIFF", compression="tiff_lzw"), ".tif"),
        "tiff-16": (cv_bytes(deep, ".tif"), ".tif"),
        "tiff-float": (cv_bytes(rgb.astype(np.float32) / 255, ".tif"), ".tif"),
        "tiff-grey-float": (pil_bytes(Image.fromarray(grey.astype(np.float32) / 200), "TIFF"), ".tif"),
        "webp": (pil_bytes(im, "WEBP", lossless=True), ".webp"),
    }


ENCODINGS = encodings()


def png_chunks(data):
    """(start, end) of each whole chunk of a PNG after its signature."""
    spans, pos = [], 8
    while pos + 12 <= len(data):
        end = pos + 12 + struct.unpack(">I", data[pos:pos + 4])[0]
        if end > len(data):
            break
        spans.append((pos, end))
        pos = end
    return spans


def jpeg_segments(data):
    """(start, end) of each marker segment of a JPEG up to its first scan's header."""
    spans, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        spans.append((pos, end))
        if data[pos + 1] == 0xDA:
            break
        pos = end
    return spans


def handmade_png(width, height):
    """A PNG that claims width x height pixels but holds a few compressed bytes (nothing is allocated)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(100))) + chunk(b"IEND", b"")


def one_line_naming(err, path):
    text = str(err)
    return "\n" not in text and text.startswith(shown(path) + ": ") and text.isprintable()


# pixels: OpenCV's, as the metric presets' community scripts read them

@pytest.mark.parametrize("label", sorted(ENCODINGS))
def test_pixels_are_what_opencv_reads_from_the_file(tmp_path, label):
    data, ext = ENCODINGS[label]
    path = tmp_path / f"image{ext}"
    path.write_bytes(data)
    for grey, flag in ((False, cv2.IMREAD_COLOR), (True, cv2.IMREAD_GRAYSCALE)):
        expected = cv2.imread(str(path), flag | cv2.IMREAD_ANYDEPTH)
        if expected is None:  # float TIFFs in the other number of channels: see the tests below
            assert (label, grey) in (("tiff-grey-float", False), ("tiff-float", True))
            continue
        expected = expected if grey else cv2.cvtColor(expected, cv2.COLOR_BGR2RGB)
        if grey and label.startswith("tiff") and expected.dtype == np.uint16:  # TIFF samples: made grey by cvtColor
            expected = cv2.cvtColor(read_pixels(path), cv2.COLOR_RGB2GRAY)
        expected = np.clip(expected, 0, 1) if expected.dtype.kind == "f" else expected  # floats: in [0, 1]
        got = read_pixels(path, grey=grey)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(got.dtype, 1.0)
        unit = expected.astype(np.float32) / scale
        assert np.array_equal(read_gray(path)[..., 0] if grey else read_image(path), unit)
    assert image_header(path)[:2] == read_image(path).shape[:2]


def test_a_grey_float_tiff_reads_as_pil_reads_it(tmp_path):
    values = np.linspace(-0.5, 1.5, 48 * 64, dtype=np.float32).reshape(48, 64)
    (tmp_path / "t.tif").write_bytes(pil_bytes(Image.fromarray(values), "TIFF"))
    with Image.open(tmp_path / "t.tif") as im:
        as_pil = np.asarray(im)
    assert np.array_equal(read_image(tmp_path / "t.tif"), np.repeat(np.clip(as_pil, 0, 1)[..., None], 3, axis=2))
    assert np.array_equal(read_gray(tmp_path / "t.tif")[..., 0], np.clip(as_pil, 0, 1))
    assert image_header(tmp_path / "t.tif") == (48, 64, False)


def test_a_colour_float_tiff_read_as_grey_is_made_grey_as_opencv_does(tmp_path):
    (tmp_path / "rgb.tif").write_bytes(ENCODINGS["tiff-float"][0])
    colour = read_image(tmp_path / "rgb.tif")
    assert np.array_equal(read_gray(tmp_path / "rgb.tif")[..., 0], cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY))


# sample types: each converted by the one rule or refused from the header

SAMPLE_TYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32",
                "float64", "complex64"]
CONVERTED = ("uint8", "uint16", "float16", "float32", "float64")


def tiff_bytes(samples, compression=None, orientation=None, layout="strips"):
    """A TIFF of `samples` ((H, W) or (H, W, C)) written by tifffile: grey for 1 or 2 samples a pixel, RGB for
    3 or 4, the rest extra samples; in strips, 16 x 16 tiles, or strips with each sample in its own plane."""
    tifffile = pytest.importorskip("tifffile")
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    separate = layout == "planes" and channels > 1
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.moveaxis(samples, 2, 0) if separate else samples,
                     photometric="rgb" if channels in (3, 4) else "minisblack",
                     planarconfig="separate" if separate else "contig" if channels > 1 else None,
                     compression=compression, tile=(16, 16) if layout == "tiles" else None,
                     extratags=[(274, "H", 1, orientation, False)] if orientation else ())
    return buf.getvalue()


def by_the_rule(samples):
    """RGB float32 in [0, 1] of stored samples as the reader's doc says: alpha (and any second sample of grey)
    dropped, uint8 / 255, uint16 / 65535, bilevel as 0 or 1, floats clipped to [0, 1], grey expanded."""
    colour = samples if samples.ndim == 2 else samples[..., 0] if samples.shape[2] <= 2 else samples[..., :3]
    scale = {"uint8": 255, "uint16": 65535}.get(colour.dtype.name, 1)
    unit = np.clip(colour, 0, 1).astype(np.float32) if colour.dtype.kind in "fb" else \
        colour.astype(np.float32) / np.float32(scale)
    return unit if unit.ndim == 3 else np.repeat(unit[..., None], 3, axis=2)


def sample_array(rng, dtype, channels, shape=(5, 7)):
    """Stored samples of `dtype` covering its range (floats: outside [0, 1] too, and far beyond float32)."""
    full = shape if channels == 1 else (*shape, channels)
    if dtype == "bool":
        return rng.random(full) > 0.5
    if np.dtype(dtype).kind in "fc":
        values = rng.normal(0.5, 0.7, full)
        values.flat[:2] = (-1e300, 1e300) if dtype == "float64" else (-3.0, 3.0)
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, full, dtype=dtype, endpoint=True)


def check_tiff(path, samples, refused_compressed):
    """A TIFF of `samples` reads by the rule, or is refused from its header naming the sample type."""
    dtype, channels = samples.dtype.name, 1 if samples.ndim == 2 else samples.shape[2]
    if (dtype in CONVERTED and channels <= 4 and not refused_compressed) or (dtype == "bool" and channels == 1):
        expected = by_the_rule(samples)
        assert np.array_equal(read_image(path), expected)
        assert np.array_equal(decode_rgb(path.read_bytes(), "upload"), read_rgb(path))
        assert image_header(path) == (*samples.shape[:2], channels >= 3)
        if channels <= 2:
            assert np.array_equal(read_gray(path)[..., 0], expected[..., 0])
        else:
            grey = cv2.cvtColor(read_pixels(path), cv2.COLOR_RGB2GRAY).astype(np.float32)
            assert np.array_equal(read_gray(path)[..., 0], grey / np.float32({"uint8": 255, "uint16": 65535}.get(dtype, 1)))
        return
    name = "uint1" if dtype == "bool" else dtype
    for read in (image_header, read_image, read_gray, lambda p: decode_rgb(p.read_bytes(), p)):
        with pytest.raises(OSError) as err:  # from the header: the check before work refuses it too
            read(path)
        assert one_line_naming(err.value, path) and f"TIFF of {name} samples ({channels} a pixel" in str(err.value)
        assert ("read here only uncompressed" in str(err.value)) == bool(refused_compressed and channels <= 4 and
                                                                          dtype in CONVERTED)


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", SAMPLE_TYPES)
def test_every_tiff_sample_type_is_read_by_the_rule_or_refused_from_its_header(tmp_path, dtype, channels, compression):
    samples = sample_array(np.random.default_rng(channels), dtype, channels)
    (tmp_path / "a.tif").write_bytes(tiff_bytes(samples, compression))
    check_tiff(tmp_path / "a.tif", samples, compression and (dtype == "float16" or channels == 2 and dtype != "uint8"))


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("layout", ["tiles", "planes"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", ["bool", *CONVERTED])
def test_tiled_and_planar_tiffs_are_read_by_the_rule_or_refused_from_their_header(tmp_path, dtype, channels, layout,
                                                                                   compression):
    samples = sample_array(np.random.default_rng(channels), dtype, channels, shape=(20, 35))
    (tmp_path / "a.tif").write_bytes(tiff_bytes(samples, compression, layout=layout))
    check_tiff(tmp_path / "a.tif", samples, compression and (dtype == "float16" or dtype != "uint8" and (
        channels == 2 or layout == "planes" and channels > 1)))


def png_bytes(samples, bits, colour_type):
    """A PNG of `samples` ((H, W) grey, or (H, W, C)) at `bits` a sample, rows unfiltered."""
    h, w = samples.shape[:2]
    rows = []
    for row in samples.reshape(h, -1):
        if bits >= 8:
            data = row.astype(">u2" if bits == 16 else np.uint8).tobytes()
        else:
            groups = np.concatenate([row, np.zeros(-len(row) % (8 // bits), row.dtype)]).reshape(-1, 8 // bits)
            data = bytes(sum(int(v) << (8 - bits * (k + 1)) for k, v in enumerate(group)) for group in groups)
        rows.append(b"\0" + data)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, bits, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("colour_type, bits", [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (4, 8),
                                               (4, 16), (6, 8), (6, 16)])
def test_every_png_sample_type_is_read_by_the_rule(colour_type, bits):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    samples = np.random.default_rng(bits).integers(0, 2 ** bits, (5, 7, channels)[:2 if channels == 1 else 3])
    expected = samples * 255 // (2 ** bits - 1) if bits < 8 else samples  # libpng widens 1, 2, 4 bits to 8
    expected = expected.astype(np.uint16 if bits == 16 else np.uint8)
    got = decode_rgb(png_bytes(samples, bits, colour_type), "p.png")  # uint8 as stored, else float32 in [0, 1]
    assert got.dtype == (np.uint8 if bits <= 8 else np.float32)
    assert np.array_equal(got.astype(np.float32) / np.float32(255) if bits <= 8 else got, by_the_rule(expected))


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(["float16", "float32", "float64"]), channels=st.integers(1, 4),
       compression=st.sampled_from([None, "zlib"]), data=st.data())
def test_float_tiffs_are_clipped_to_the_unit_range_and_non_finite_values_are_refused(dtype, channels, compression,
                                                                                     data):
    if compression and (dtype == "float16" or channels == 2):
        compression = None  # refused compressed: the test above
    floats = st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype == "float16" else 32 if dtype ==
                       "float32" else 64)
    values = np.array(data.draw(st.lists(floats, min_size=12 * channels, max_size=12 * channels)), dtype=dtype)
    samples = values.reshape((3, 4) if channels == 1 else (3, 4, channels))
    blob = tiff_bytes(samples, compression)
    kept = samples if channels == 1 else samples[..., 0] if channels == 2 else samples[..., :3]  # alpha dropped first
    bad = int(kept.size - np.count_nonzero(np.isfinite(kept)))
    if bad:
        with pytest.raises(OSError, match=f"^upload.tif: {bad:,} non-finite pixel values"):
            decode_rgb(blob, "upload.tif")
    else:
        assert np.array_equal(decode_rgb(blob, "upload.tif"), by_the_rule(samples))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_of_samples_is_shown_upright_as_pil_shows_it(tmp_path, orientation):
    from PIL import ImageOps

    rgba = np.random.default_rng(orientation).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    with Image.open(io.BytesIO(tiff_bytes(rgba[..., :3], orientation=orientation))) as im:
        upright = np.asarray(ImageOps.exif_transpose(im)).astype(np.float32) / np.float32(255)
    for samples, compression in ((rgba[..., :3], None), (rgba, None), (rgba[..., :3].astype(np.float32) / 255, None),
                                 (rgba[..., :3].astype(np.float32) / 255, "zlib"), (rgba[..., :3] * np.uint16(257),
                                                                                   "zlib")):
        path = tmp_path / "o.tif"
        path.write_bytes(tiff_bytes(samples, compression, orientation))
        assert np.array_equal(read_image(path), upright), (samples.dtype, samples.shape, compression)
        assert image_header(path)[:2] == upright.shape[:2]


def test_a_jpeg_of_other_than_8_bit_samples_is_refused_from_its_header(tmp_path):
    data = bytearray(ENCODINGS["jpeg"][0])
    sof = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 4] = 12  # the frame header's sample precision
    (tmp_path / "deep.jpg").write_bytes(bytes(data))
    for read in (image_header, read_image):
        with pytest.raises(OSError) as err:
            read(tmp_path / "deep.jpg")
        assert one_line_naming(err.value, tmp_path / "deep.jpg") and "a JPEG of 12-bit samples" in str(err.value)


def test_the_format_comes_from_the_bytes_not_the_name(tmp_path):
    for label in ("jpeg", "png", "bmp", "tiff", "webp"):
        data = ENCODINGS[label][0]
        expected = decode_rgb(data, "upload")
        for name in ("photo.png", "photo.jpg", "photo", "photo.txt"):
            (tmp_path / name).write_bytes(data)
            assert np.array_equal(read_rgb(tmp_path / name), expected), (label, name)
            assert image_header(tmp_path / name)[:2] == expected.shape[:2]


def test_real_files_read_whole():
    if not os.path.isdir(REALDATA):
        pytest.skip(f"{REALDATA}: no real benchmark files here (a clone without ../shared)")
    files = sorted(str(p) for p in pathlib.Path(REALDATA).rglob("*") if p.suffix in (".png", ".jpg"))
    assert files
    for path in files:
        img = read_rgb(path)
        expected = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert np.array_equal(img, expected) and image_header(path)[:2] == img.shape[:2]


# completeness, judged from the data

@settings(max_examples=60, deadline=None)
@given(label=st.sampled_from(["png", "png-16", "png-palette", "png-exif"]), cut=st.integers(0, 1 << 20))
def test_a_png_reads_exactly_when_its_compressed_data_are_whole(tmp_path_factory, label, cut):
    data = ENCODINGS[label][0]
    cut = cut % (len(data) + 1)
    stream_end = max(end for start, end in png_chunks(data) if data[start + 4:start + 8] == b"IDAT") - 4
    path = tmp_path_factory.mktemp("png") / "cut.png"
    path.write_bytes(data[:cut])
    if cut >= stream_end:  # every row and the end of the compressed stream: IEND or not, it reads whole
        assert np.array_equal(read_rgb(path), decode_rgb(data, "whole"))
        assert image_header(path)[:2] == read_rgb(path).shape[:2]
        return
    for read in (read_rgb, image_header):
        with pytest.raises(OSError) as err:
            read(path)
        assert one_line_naming(err.value, path)


def test_a_png_without_iend_reads_and_one_cut_in_its_image_data_is_refused(tmp_path):
    data = ENCODINGS["png"][0]
    assert data.endswith(b"IEND\xaeB`\x82")
    (tmp_path / "no_iend.png").write_bytes(data[:-12])
    assert np.array_equal(read_rgb(tmp_path / "no_iend.png"), decode_rgb(data, "whole"))
    assert image_header(tmp_path / "no_iend.png") == (48, 64, True)
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"cut.png: truncated PNG \(its image data give [\d,]+ of the [\d,]+ bytes of"):
        read_rgb(tmp_path / "cut.png")
    with pytest.raises(OSError, match=r"cut.png: truncated PNG"):
        image_header(tmp_path / "cut.png")


@settings(max_examples=80, deadline=None)
@given(label=st.sampled_from(["jpeg", "jpeg-progressive", "jpeg-restarts", "jpeg-exif", "jpeg-cmyk"]),
       cut=st.integers(0, 1 << 20), name=st.sampled_from(["cut", "cut.png", "cut.jpg"]))
def test_a_cut_jpeg_is_refused_whatever_its_name(tmp_path_factory, label, cut, name):
    data = ENCODINGS[label][0]
    path = tmp_path_factory.mktemp("jpeg") / name
    path.write_bytes(data[:cut % len(data)])
    for read in (read_rgb, read_gray, image_header):
        with pytest.raises(OSError) as err:
            read(path)
        assert one_line_naming(err.value, path)


def test_a_cut_jpeg_without_extension_is_refused_as_truncated(tmp_path):
    data = ENCODINGS["jpeg"][0]
    (tmp_path / "photo").write_bytes(data[: len(data) * 2 // 3])
    message = f"{tmp_path / 'photo'}: truncated JPEG (the data stop before the end-of-image marker of its last scan)"
    for read in (read_image, image_header):
        with pytest.raises(OSError) as err:
            read(tmp_path / "photo")
        assert str(err.value) == message


@settings(max_examples=60, deadline=None)
@given(label=st.sampled_from(["jpeg", "jpeg-progressive", "jpeg-restarts", "jpeg-exif", "jpeg-cmyk", "jpeg-grey"]),
       at=st.floats(0.05, 0.95))
def test_a_jpeg_cut_inside_its_scans_is_refused_even_with_an_end_marker_appended(tmp_path_factory, label, at):
    """The decoder's verdict, not the trailer: libjpeg fills a cut scan with grey and only warns."""
    data = ENCODINGS[label][0]
    start = jpeg_segments(data)[-1][1]  # the first scan's data
    path = tmp_path_factory.mktemp("jpeg") / "cut.jpg"
    path.write_bytes(data[:start + int((len(data) - 2 - start) * at)] + b"\xff\xd9")
    with pytest.raises(OSError) as err:
        read_rgb(path)
    assert one_line_naming(err.value, path) and ("corrupt JPEG data (the decoder: " in str(err.value)
                                                  or "truncated" in str(err.value))  # the walk of its markers


@pytest.mark.parametrize("sof", [0xC9, 0xCA])  # arithmetic coding declared, Huffman-coded data given
def test_a_jpeg_whose_scans_do_not_decode_is_refused(tmp_path, sof):
    data = bytearray(ENCODINGS["jpeg"][0])
    at = data.index(b"\xff\xc0")
    data[at + 1] = sof
    (tmp_path / "x.jpg").write_bytes(bytes(data))
    with pytest.raises(OSError, match=r"x.jpg: (not a readable image \()?corrupt JPEG data"):
        read_rgb(tmp_path / "x.jpg")


@settings(max_examples=30, deadline=None)
@given(label=st.sampled_from(["jpeg", "jpeg-progressive", "jpeg-exif"]), at=st.integers(0, 100),
       stray=st.lists(st.integers(0, 254), min_size=1, max_size=40))
def test_stray_bytes_between_jpeg_segments_are_skipped_as_libjpeg_does(label, at, stray):
    data = ENCODINGS[label][0]
    end = jpeg_segments(data)[at % (len(jpeg_segments(data)) - 1)][1]  # after a segment before the scan header
    damaged = data[:end] + bytes(stray) + data[end:]
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_rgb(damaged, "stray"), expected)


@settings(max_examples=40, deadline=None)
@given(label=st.sampled_from(["bmp", "bmp-grey", "bmp-palette", "webp"]), cut=st.integers(0, 1 << 20))
def test_a_cut_bmp_or_webp_is_refused(tmp_path_factory, label, cut):
    data = ENCODINGS[label][0]
    path = tmp_path_factory.mktemp("cut") / "cut.img"
    path.write_bytes(data[:cut % len(data)])
    for read in (read_rgb, image_header):
        with pytest.raises(OSError) as err:
            read(path)
        assert one_line_naming(err.value, path)


@settings(max_examples=30, deadline=None)
@given(label=st.sampled_from(sorted(ENCODINGS)), garbage=st.binary(min_size=1, max_size=3000))
def test_bytes_appended_after_the_end_change_nothing(label, garbage):
    data = ENCODINGS[label][0]
    assert np.array_equal(decode_rgb(data + garbage, "appended"), decode_rgb(data, "whole"))


# limits before decoding

def test_a_20000_by_20000_png_is_refused_before_decoding(tmp_path):
    (tmp_path / "huge.png").write_bytes(handmade_png(20000, 20000))
    message = (f"{tmp_path / 'huge.png'}: 20000x20000 = 400,000,000 pixels, at or above the limit of 400,000,000 "
               f"pixels (set HDM_MAX_PIXELS to allow it)")
    for read in (read_image, read_gray, image_header):
        with pytest.raises(OSError) as err:
            read(tmp_path / "huge.png")
        assert str(err.value) == message
    (tmp_path / "under.png").write_bytes(handmade_png(19999, 20000))
    assert image_header(tmp_path / "under.png") == (20000, 19999, True)  # one pixel row under the limit


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40))
def test_the_pixel_limit_is_inclusive(tmp_path_factory, h, w):
    data = cv_bytes(photo(size=(h, w)), ".png")
    path = tmp_path_factory.mktemp("limit") / "p.png"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HDM_MAX_PIXELS", str(h * w))
        for read in (lambda: decode_rgb(data, path), lambda: read_image(path), lambda: image_header(path)):
            with pytest.raises(OSError, match=f"{w}x{h} = {h * w:,} pixels, at or above the limit of {h * w:,} pixels"):
                read()
        env.setenv("HDM_MAX_PIXELS", str(h * w + 1))
        assert decode_rgb(data, path).shape == read_image(path).shape == (h, w, 3)
        assert image_header(path)[:2] == (h, w)


def test_an_image_too_large_for_the_memory_available_is_refused_before_decoding(tmp_path, monkeypatch):
    data = ENCODINGS["png"][0]
    (tmp_path / "p.png").write_bytes(data)
    needed = len(data) + 48 * 64 * 3 * (1 + 4)  # the file, the decoded array and its float32 copy
    monkeypatch.setenv("HDM_MEMORY_LIMIT", str(needed))
    assert read_image(tmp_path / "p.png").shape == (48, 64, 3)
    monkeypatch.setenv("HDM_MEMORY_LIMIT", str(needed - 1))
    for read in (read_image, read_rgb):
        with pytest.raises(OSError) as err:
            read(tmp_path / "p.png")
        assert one_line_naming(err.value, tmp_path / "p.png")
        assert f"64x48 needs about {needed:,} bytes ({needed / 1024:.1f} KiB) to read, more than the {needed - 1:,} " \
               f"bytes ({(needed - 1) / 1024:.1f} KiB) of memory available now" in str(err.value)
        assert "free memory first" in str(err.value)
    assert read_gray(tmp_path / "p.png").shape == (48, 64, 1)  # one channel needs less
    assert image_header(tmp_path / "p.png") == (48, 64, True)  # the check before work does not depend on memory


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 1 << 62))
def test_byte_counts_in_messages_are_exact_and_readable_at_every_scale(n):
    text = byte_count(n)
    assert text.startswith(f"{n:,} byte") and int(text.split(" ")[0].replace(",", "")) == n
    if n >= 1024:  # and a unit that shows them: between 1.0 and 1024.0 of it, never 0.0
        value, unit = text.split("(")[1].rstrip(")").split(" ")
        assert 1.0 <= float(value) <= 1024 and abs(float(value) * 1024 ** BYTE_UNITS.index(unit) * 1024 - n) <= \
            0.0501 * 1024 ** (BYTE_UNITS.index(unit) + 1)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 1000), suffix=st.sampled_from(["", "K", "k", "KiB", " K"]))
def test_hdm_memory_limit_caps_the_memory_available(n, suffix):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HDM_MEMORY_LIMIT", f"{n}{suffix}")
        assert available_memory() == n * (1024 if suffix else 1)  # far below what any machine has
        env.setenv("HDM_MEMORY_LIMIT", f"{n} apples")
        with pytest.raises(ValueError, match=f"HDM_MEMORY_LIMIT='{n} apples': expected a whole number"):
            available_memory()


# any file name

def test_any_file_name_reads_and_a_cut_file_is_named_escaped_in_one_line(tmp_path):
    folder = os.fsencode(tmp_path)
    data = ENCODINGS["jpeg"][0]
    expected = decode_rgb(data, "whole")
    for stem in STEMS:
        path = os.path.join(folder, stem + b".jpg")
        with open(path, "wb") as f:
            f.write(data)
        for form in (path, os.fsdecode(path), pathlib.Path(os.fsdecode(path))):
            assert np.array_equal(read_rgb(form), expected) and image_header(form) == (48, 64, True)
        cut = os.path.join(folder, stem + b".cut.jpg")
        with open(cut, "wb") as f:
            f.write(data[:-100])
        for form in (cut, os.fsdecode(cut)):
            with pytest.raises(OSError) as err:
                read_image(form)
            assert one_line_naming(err.value, cut) and str(err.value).encode("utf-8")
    assert len(images_in(os.fsdecode(folder))) == 2 * len(STEMS)
    assert str(err.value).startswith(f"{tmp_path}/\\xff\\xfe.cut.jpg: truncated JPEG")


def test_write_image_takes_any_name(tmp_path):
    rgb = photo()
    for stem in STEMS:
        path = os.path.join(os.fsencode(tmp_path), stem + b".png")
        write_image(path, rgb)
        assert np.array_equal(read_rgb(path), rgb)
    assert sorted(os.listdir(os.fsencode(tmp_path))) == sorted(stem + b".png" for stem in STEMS)


def test_hdm_predict_restores_the_others_and_names_each_bad_file_in_one_line(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"in\xe9")
    os.makedirs(folder)
    good = [os.path.join(folder, name) for name in (b"a.png", b"caf\xe9.png", b"new\nline.jpg", b"f64.tif")]
    for path in good:
        with open(path, "wb") as f:
            img = photo(size=(24, 32))
            f.write(cv_bytes(img / 255 if path.endswith(b".tif") else img, os.path.splitext(os.fsdecode(path))[1]))
    bad = {os.path.join(folder, b"big.png"): "needs about",  # too large for HDM_MEMORY_LIMIT below
           os.path.join(folder, b"huge.png"): "at or above the limit of 400,000,000 pixels",
           os.path.join(folder, b"cut\xff.png"): "truncated JPEG",  # a JPEG named .png, cut
           os.path.join(folder, b"i16.tif"): "a TIFF of int16 samples (3 a pixel, RGB), which is not read here"}
    contents = [cv_bytes(photo(size=(300, 400)), ".png"), handmade_png(20000, 20000), ENCODINGS["jpeg"][0][:-300],
                cv_bytes(photo(size=(24, 32)).astype(np.int16), ".tif")]
    for path, content in zip(bad, contents):
        with open(path, "wb") as f:
            f.write(content)
    os.mkfifo(os.path.join(folder, b"pipe.png"))  # would block a plain open() until a writer comes
    bad[os.path.join(folder, b"pipe.png")] = "a named pipe (FIFO), expected a regular file"
    os.mkdir(os.path.join(folder, b"folder.jpg"))
    bad[os.path.join(folder, b"folder.jpg")] = "a folder, expected a regular file"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    env = {**os.environ, "PYTHONPATH": ROOT, "HDM_MEMORY_LIMIT": "1M"}
    proc = subprocess.run([sys.executable, "-m", "hdm.cli.predict", folder, str(tmp_path / "out"), "-c",
                           str(tmp_path / "c.yaml")], capture_output=True, env=env, cwd=ROOT, timeout=300)
    err = proc.stderr.decode("utf-8").splitlines()
    assert proc.returncode == 1 and len(err) == len(bad), err
    for path, reason in bad.items():
        assert sum(shown(path) in line and reason in line for line in err) == 1, (shown(path), err)
    out = os.listdir(os.fsencode(tmp_path / "out"))
    assert len(out) == len(good) and all(read_rgb(os.path.join(os.fsencode(tmp_path / "out"), name)).shape == (24, 32, 3)
                                         for name in out)


# the fuzz: mutated real files, decoded in a child process

def dimension_fields(data):
    """(offset, size in bytes, byte order) of the header fields that hold an image's width and height."""
    if data.startswith(b"\x89PNG"):
        return [(16, 4, ">"), (20, 4, ">")]
    if data.startswith(b"\xff\xd8"):
        return [(start + 5, 2, ">") for start, _ in jpeg_segments(data) if data[start + 1] in (0xC0, 0xC1, 0xC2)]
    if data.startswith(b"BM"):
        return [(18, 4, "<"), (22, 4, "<")]
    if data[:2] in (b"II", b"MM"):
        order = "<" if data[:2] == b"II" else ">"
        ifd = struct.unpack(order + "I", data[4:8])[0]
        entries = [ifd + 2 + 12 * i for i in range(struct.unpack(order + "H", data[ifd:ifd + 2])[0])]
        return [(e + 8, 2 if data[e + 2:e + 4] == struct.pack(order + "H", 3) else 4, order) for e in entries
                if struct.unpack(order + "H", data[e:e + 2])[0] in (256, 257)]
    return []


def units(data, rng):
    """Spans a mutation deletes or duplicates: PNG chunks, JPEG segments, else a few random ranges."""
    spans = png_chunks(data) if data.startswith(b"\x89PNG") else jpeg_segments(data)
    if spans:
        return spans
    starts = rng.integers(0, len(data), 4)
    return [(int(s), int(min(len(data), s + rng.integers(1, 200)))) for s in starts]


def mutate(data, rng):
    """(description, mutated bytes) by one of the fuzz's mutations."""
    kind = rng.choice(["truncate", "flip", "delete", "duplicate", "dimensions", "append"])
    if kind == "truncate":
        cut = int(rng.integers(0, len(data)))
        return f"cut at {cut}", data[:cut]
    if kind == "flip":
        out = bytearray(data)
        spots = rng.integers(0, len(data), int(rng.integers(1, 9)))
        for spot in spots:
            out[spot] ^= 1 << int(rng.integers(0, 8))
        return f"bits flipped at {sorted(int(s) for s in spots)}", bytes(out)
    if kind in ("delete", "duplicate"):
        spans = units(data, rng)
        start, end = spans[int(rng.integers(0, len(spans)))]
        middle = b"" if kind == "delete" else data[start:end] * 2
        return f"{kind} bytes {start}:{end}", data[:start] + middle + data[end:]
    if kind == "dimensions" and dimension_fields(data):
        fields = dimension_fields(data)
        offset, size, order = fields[int(rng.integers(0, len(fields)))]
        value = int(rng.choice([0, 1, 7, 255, 4096, 19999, 20000, 65535, 2 ** 31 - 1, 2 ** 32 - 1])) % (1 << 8 * size)
        out = data[:offset] + value.to_bytes(size, "big" if order == ">" else "little") + data[offset + size:]
        if data.startswith(b"\x89PNG") and rng.random() < 0.5:  # a header that passes libpng's CRC check
            out = out[:29] + struct.pack(">I", zlib.crc32(out[12:29])) + out[33:]
        return f"dimension field at {offset} set to {value}", out
    garbage = rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()
    return f"{len(garbage)} random bytes appended", data + garbage


def fuzz_cases(folder, seeds, per_seed, rng):
    """Write the mutants of each seed under names from STEMS with assorted extensions (or none); returns
    [(path, description)]."""
    cases = []
    extensions = [b".png", b".jpg", b".jpeg", b".bmp", b".tif", b".webp", b"", b".txt"]
    for label, data in seeds:
        for _ in range(per_seed):
            what, mutant = mutate(data, rng)
            if rng.random() < 0.2:
                then, mutant = mutate(mutant, rng)
                what = f"{what}, then {then}"
            name = STEMS[len(cases) % len(STEMS)] + b"-%04d" % len(cases) + extensions[int(rng.integers(0, 8))]
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(mutant)
            cases.append((path, f"{label}: {what}"))
    return cases


def describe(result):
    if isinstance(result, np.ndarray):
        finite = bool(np.isfinite(result).all())
        return ["array", list(result.shape), str(result.dtype), float(result.min()) if finite else None,
                float(result.max()) if finite else None]
    return ["header", list(result)]


def fuzz_child(manifest, progress, results):
    """Run in a child process: every read of every case of `manifest` (hex-encoded paths, one a line);
    the index of the case about to be read goes to `progress` first, each outcome to `results`."""
    with open(manifest) as f:
        paths = [bytes.fromhex(line.strip()) for line in f]
    with open(progress, "w", buffering=1) as started, open(results, "w") as out:
        for i, path in enumerate(paths):
            started.write(f"{i}\n")
            with open(path, "rb") as f:
                data = f.read()
            reads = {"read_image": lambda: read_image(path), "read_rgb": lambda: read_rgb(os.fsdecode(path)),
                     "read_gray": lambda: read_gray(pathlib.Path(os.fsdecode(path))),
                     "image_header": lambda: image_header(path), "decode_rgb": lambda: decode_rgb(data, path)}
            outcome = {}
            for label, read in reads.items():
                try:
                    outcome[label] = describe(read())
                except OSError as err:
                    outcome[label] = ["OSError", str(err)]
                except Exception as err:  # what the test is there to find
                    outcome[label] = ["other", f"{type(err).__name__}: {err}"]
            out.write(json.dumps(outcome) + "\n")


def problems_of(path, outcome):
    """What is wrong with one case's outcomes: each read gives an array of the right shape, dtype and range,
    a header, or OSError with one line naming the file; nothing else."""
    found = []
    for label, (kind, *rest) in outcome.items():
        if kind == "OSError":
            if "\n" in rest[0] or not rest[0].startswith(shown(path) + ": "):
                found.append(f"{label}: OSError not one line naming the file: {rest[0]!r}")
        elif kind == "array":
            shape, dtype, low, high = rest
            channels = 1 if label == "read_gray" else 3
            dtypes = ("uint8", "float32") if label in ("read_rgb", "decode_rgb") else ("float32",)
            if len(shape) != 3 or shape[2] != channels or dtype not in dtypes or low is None or low < 0 or \
                    high > (255 if dtype == "uint8" else 1):
                found.append(f"{label}: array {shape} {dtype} in [{low}, {high}]")
        elif kind == "header":
            h, w, colour = rest[0]
            if not (h > 0 and w > 0 and isinstance(colour, bool)):
                found.append(f"{label}: header {rest[0]}")
        else:
            found.append(f"{label}: {rest[0]}")
    return found


def run_fuzz(tmp_path, seeds, per_seed):
    folder = os.path.join(os.fsencode(tmp_path), b"cases")
    os.makedirs(folder)
    cases = fuzz_cases(folder, seeds, per_seed, np.random.default_rng(FUZZ_SEED))
    manifest, progress, results = (str(tmp_path / n) for n in ("manifest", "progress", "results"))
    with open(manifest, "w") as f:
        f.writelines(path.hex() + "\n" for path, _ in cases)
    env = {**os.environ, "PYTHONPATH": ROOT, "HDM_MEMORY_LIMIT": "256M"}  # huge headers stop at the memory check
    code = "import sys; from tests.test_image_reader import fuzz_child; fuzz_child(*sys.argv[1:])"
    try:
        proc = subprocess.run([sys.executable, "-c", code, manifest, progress, results], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        failure = None if proc.returncode == 0 else f"exit code {proc.returncode}: {proc.stderr[-2000:]}"
    except subprocess.TimeoutExpired:
        failure = "no answer in 600 s"
    if failure:
        with open(progress) as f:
            path, what = cases[int(f.read().split()[-1])]
        shutil.copyfile(path, tmp_path / "offending-input")
        pytest.fail(f"the child decoding the fuzz cases died ({failure}) on {shown(path)} ({what}); the input is "
                    f"saved as {tmp_path / 'offending-input'}")
    with open(results) as f:
        outcomes = [json.loads(line) for line in f]
    assert len(outcomes) == len(cases)
    found = [f"{shown(path)} ({what}): {problem}" for (path, what), outcome in zip(cases, outcomes)
             for problem in problems_of(path, outcome)]
    assert not found, "\n".join(found[:20])
    return outcomes


def test_fuzz_mutated_files_decode_or_fail_with_one_line(tmp_path):
    seeds = [(label, data) for label, (data, _) in sorted(ENCODINGS.items())]
    rgba = photo().astype(np.float32) / 255
    rgba = np.dstack([rgba, rgba[..., :1]])
    seeds += [("tiff-float16-rgba", tiff_bytes(rgba.astype(np.float16))),  # decoded by tifffile
              ("tiff-float64-rgb", tiff_bytes(rgba[..., :3].astype(np.float64))),
              ("tiff-grey-alpha-16", tiff_bytes((rgba[..., 2:] * 65535).astype(np.uint16))),
              ("tiff-zlib-float32-rgba", tiff_bytes(rgba, "zlib"))]  # decoded by libtiff (OpenCV)
    outcomes = run_fuzz(tmp_path, seeds, per_seed=30)
    decoded = sum(o["read_image"][0] == "array" for o in outcomes)
    assert 0 < decoded < len(outcomes)  # the mutants are neither all harmless nor all refused


def test_fuzz_mutated_real_files(tmp_path):
    if not os.path.isdir(REALDATA):
        pytest.skip(f"{REALDATA}: no real benchmark files here (a clone without ../shared)")
    picks = ["real_hazy/doubledip_tiananmen.png", "real_hazy/mayanksingal_test2.jpg", "dicm/33.jpg",
             "rain100l_mprnet/input/2.png", "sots_indoor_dehazeformer/hazy/1400_1.png"]
    seeds = []
    for rel in picks:
        with open(os.path.join(REALDATA, rel), "rb") as f:
            seeds.append((rel, f.read()))
    run_fuzz(tmp_path, seeds, per_seed=12)


def _zeroed_scan(data):
    damaged = bytearray(data)
    middle = len(damaged) // 2
    damaged[middle:middle + 200] = bytes(200)
    return bytes(damaged)


def _scan_dropped(data):
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xDA]
    return data[:starts[2]] + data[starts[3]:]


@pytest.mark.parametrize("label,damage", [("jpeg", _zeroed_scan), ("jpeg-progressive", _scan_dropped)])
def test_a_jpeg_whose_scan_data_are_damaged_is_refused(tmp_path, label, damage):
    """Damage that keeps every marker: libjpeg decodes garbage or skips what it cannot use, and warns."""
    (tmp_path / "x.jpg").write_bytes(damage(ENCODINGS[label][0]))
    with pytest.raises(OSError, match=r"x.jpg: corrupt JPEG data \(the decoder: "):
        read_rgb(tmp_path / "x.jpg")
