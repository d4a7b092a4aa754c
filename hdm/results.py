"""Result files of an evaluation: per-image CSV, Markdown summary, provenance, comparison grid.

Every result folder records the metric preset, its options and the library versions (meta.json), so
numbers can be compared only where they were computed the same way. Names are written as
hdm.errors.shown prints them (one printable line, whatever bytes the file name has), and the text drawn
into the comparison grid is printable ASCII (`drawable`): OpenCV's drawing functions take nothing else.
"""
import csv
import datetime
import hashlib
import json
import os
import platform

import cv2
import numpy as np
import torch

import hdm
from hdm.errors import shown
from hdm.files import atomic_write


def provenance(preset, options):
    """The metric preset, its options, and the versions of everything that computes numbers."""
    import scipy
    import skimage

    return {"preset": preset, "options": dict(options), "hdm": hdm.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "scipy": scipy.__version__,
            "scikit-image": skimage.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def code_digest():
    """A digest of the package's source (every hdm/**/*.py file): results computed by other code differ."""
    root = os.path.dirname(os.path.abspath(hdm.__file__))
    digest = hashlib.sha256()
    for top, _, names in sorted(os.walk(root)):
        for name in sorted(n for n in names if n.endswith(".py")):
            path = os.path.join(top, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


def config_digest(cfg):
    """A digest of a resolved config (any JSON-like value)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recorded_result(path, digests):
    """The result a tool recorded in the JSON file `path` when it was computed with these digests (config,
    code, data: each a key of the file); None when the file is absent, unreadable, or of another config,
    code or data. The one rule by which a tool reuses a result instead of computing it (sweeps, the demo)."""
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(result, dict) and all(result.get(k) == v for k, v in digests.items()):
        return result
    return None


def _atomic_text(path, text):
    with atomic_write(path, "w") as f:
        f.write(text)


def summary_table(rows, label):
    """Markdown: a column per metric (means); a line for the degraded input when rows have input_*
    columns, then one for `label`."""
    metrics = [k for k in rows[0] if k != "name" and not k.startswith("input_")]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "name"}
    fmt = lambda k, v: f"{v:.2f}" if k.endswith("psnr") else f"{v:.4f}"  # noqa: E731
    lines = ["| method | " + " | ".join(metrics) + " | images |", "|---" * (len(metrics) + 2) + "|"]
    if all(f"input_{k}" in mean for k in metrics):
        lines.append("| input (degraded) | " + " | ".join(fmt(k, mean[f"input_{k}"]) for k in metrics) + f" | {len(rows)} |")
    lines.append(f"| {label} | " + " | ".join(fmt(k, mean[k]) for k in metrics) + f" | {len(rows)} |")
    return "\n".join(lines) + "\n"


def write_results(out_dir, rows, label, meta):
    """per_image.csv, summary.md (table + preset line) and meta.json in out_dir; returns the summary text.
    Row names and the label are written as shown() prints them."""
    os.makedirs(out_dir, exist_ok=True)
    rows = [{**row, "name": shown(row["name"])} for row in rows]
    text = summary_table(rows, shown(label))
    presets = meta.get("presets") or {meta["preset"]: meta["options"]}
    described = ", ".join(f"`{name}` ({', '.join(f'{k}={v}' for k, v in opts.items()) or 'default options'})"
                          for name, opts in presets.items())
    text += f"\nmetric preset{'s' if len(presets) > 1 else ''} {described}; torch {meta['torch']}, hdm {meta['hdm']}\n"
    with atomic_write(os.path.join(out_dir, "per_image.csv"), "w") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _atomic_text(os.path.join(out_dir, "summary.md"), text)
    _atomic_text(os.path.join(out_dir, "meta.json"), json.dumps(meta, indent=1) + "\n")
    return text


HEADERS = ("input", "output", "target")


def drawable(text):
    """`text` as printable ASCII, what OpenCV's drawing functions take: shown() escapes the bytes of a file
    name that are not UTF-8 and control characters; every other character that is not ASCII becomes \\xNN,
    \\uNNNN or \\UNNNNNNNN."""
    return shown(text).encode("ascii", "backslashreplace").decode("ascii")


def _text_strip(width, height, text, centres=None):
    """A white (height, width, 3) strip with black text (drawable), left-aligned, or centred at each x of
    `centres`."""
    strip = np.full((height, width, 3), 255, np.uint8)  # OpenCV draws text on uint8 images
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, height / 40, 1
    for words, x in ([(text, None)] if centres is None else zip(text, centres)):
        words = drawable(words)
        (w, h), _ = cv2.getTextSize(words, font, scale, thick)
        left = 4 if x is None else max(0, int(x - w / 2))
        cv2.putText(strip, words, (left, (height + h) // 2), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return strip.astype(np.float32) / 255


def _fits(text, width, height):
    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, height / 40, 1)[0][0] + 8 <= width


def _wrapped(text, width, height):
    """`text` cut at its ', ' into lines that each fit `width` pixels when drawn by _text_strip at
    `height`; a part too long for a line alone (a long file name) is cut between characters, so every
    character is drawn and none beyond the edge."""
    lines = []
    for part in drawable(text).split(", "):
        joined = f"{lines[-1]}, {part}" if lines else part
        if lines and _fits(joined, width, height):
            lines[-1] = joined
            continue
        while not _fits(part, width, height) and len(part) > 1:
            cut = max(1, max((n for n in range(1, len(part)) if _fits(part[:n], width, height)), default=1))
            lines.append(part[:cut])
            part = part[cut:]
        lines.append(part)
    return lines


def _column(image, label, height):
    """An image centred on white in a column at least as wide as its header label (narrow images)."""
    need = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, height / 40, 1)[0][0] + 8
    pad = max(0, need - image.shape[1])
    return np.pad(image, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=1.0)


def comparison_grid(triplets, captions=None, height=256):
    """A labelled figure: a header naming the columns (input, output, target), then per example its
    images (each (H, W, 3) in [0, 1], resized to `height`, on white in a column at least as wide as its
    label) and the caption lines below them (the file name and its scores, from `captions`, wrapped to
    the row's width)."""
    rows = []
    for i, images in enumerate(triplets):
        scaled = [_column(cv2.resize(np.asarray(im, np.float32), (max(1, round(im.shape[1] * height / im.shape[0])),
                                                                  height), interpolation=cv2.INTER_AREA), label, 32)
                  for im, label in zip(images, HEADERS)]
        row = np.concatenate(scaled, axis=1)
        if captions:
            lines = _wrapped(captions[i], row.shape[1], 28)
            row = np.concatenate([row, *(_text_strip(row.shape[1], 28, line) for line in lines)])
        rows.append((row, [im.shape[1] for im in scaled]))
    width = max(r.shape[1] for r, _ in rows)
    widths = rows[0][1]
    centres = [sum(widths[:k]) + widths[k] / 2 for k in range(len(widths))]
    header = _text_strip(width, 32, HEADERS[:len(widths)], centres)
    body = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r, _ in rows]
    return np.concatenate([header, *body])


def caption(row, metrics=("psnr", "ssim")):
    """'name: psnr 25.31, ssim 0.8123' of one per-image result row (the metrics it has)."""
    parts = [f"{k} {row[k]:.2f}" if k.endswith("psnr") else f"{k} {row[k]:.4f}" for k in row
             if k != "name" and not k.startswith("input_") and (k in metrics or k.split(".")[-1] in metrics)]
    return f"{row['name']}: " + ", ".join(parts) if parts else row["name"]
