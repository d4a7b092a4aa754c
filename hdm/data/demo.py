"""Embedded demo data: synthetic haze on real photos that scikit-image ships.

Atmospheric scattering model: I = J * t + A * (1 - t), t = exp(-beta * d), with
- d: a smooth random depth field in [0.2, 1.6] (a random tilted ramp plus three low-frequency
  cosine waves, so near and far regions form large connected areas, as in real scenes),
- beta ~ U(0.6, 1.4) per sample (t then spans about 0.1 to 0.9),
- A ~ U(0.75, 0.95) per sample, with a per-channel tint ~ U(-0.03, 0.03).
Training photos: astronaut, coffee, rocket; validation: chelsea (never seen in training).
Training sample k of a photo uses the photo with its colour channels in the k-th of the six orders
(RGB, RBG, GRB, ...): three photos alone teach a network their colours, and channel orders widen the
colour content at no cost to the physics (the scattering model acts on each channel alike).
"""
import itertools
import json
import os

import numpy as np
from skimage import data as skdata

from .io import write_image

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket")
VAL_PHOTOS = ("chelsea",)
DEPTH_RANGE = (0.2, 1.6)
BETA_RANGE = (0.6, 1.4)
AIRLIGHT_RANGE = (0.75, 0.95)
TINT = 0.03
CHANNEL_ORDERS = tuple(itertools.permutations(range(3)))


def photo(name):
    """A scikit-image sample photo as RGB float32 in [0, 1]."""
    return getattr(skdata, name)().astype(np.float32) / 255.0


def smooth_depth(h, w, rng):
    """Random smooth depth field (H, W) in DEPTH_RANGE."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    field = np.cos(angle) * yy + np.sin(angle) * xx
    for _ in range(3):
        fy, fx = rng.uniform(0.5, 2.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        field = field + 0.3 * np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
    field = (field - field.min()) / (field.max() - field.min())
    return DEPTH_RANGE[0] + (DEPTH_RANGE[1] - DEPTH_RANGE[0]) * field


def synthesize_haze(clean, rng):
    """Hazy version of a clean (H, W, 3) image. Returns (hazy, transmission, params)."""
    h, w = clean.shape[:2]
    beta = rng.uniform(*BETA_RANGE)
    airlight = rng.uniform(*AIRLIGHT_RANGE) + rng.uniform(-TINT, TINT, 3)
    t = np.exp(-beta * smooth_depth(h, w, rng))[..., None]
    hazy = np.clip(clean * t + airlight * (1 - t), 0, 1).astype(np.float32)
    return hazy, t[..., 0].astype(np.float32), {"beta": float(beta), "airlight": airlight.round(4).tolist()}


def make_haze_demo(root, samples_per_photo=12, seed=0):
    """Write root/{train,val}/{hazy,clear,trans}/<photo>_<k>.png (hazy, clear and the transmission
    map share names; trans is t as an 8-bit grey image, as RESIDE ships it).

    Idempotent: nothing is rewritten when root/manifest.json records the same settings.
    """
    manifest_path = os.path.join(root, "manifest.json")
    settings = {"samples_per_photo": samples_per_photo, "seed": seed, "train": TRAIN_PHOTOS, "val": VAL_PHOTOS,
                "channel_orders": "cycled over training samples", "trans": "uint8 png",
                "depth": DEPTH_RANGE, "beta": BETA_RANGE, "airlight": AIRLIGHT_RANGE, "tint": TINT}
    settings = json.loads(json.dumps(settings))
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("settings") == settings:
                return root
    rng = np.random.default_rng(seed)
    samples = []
    for split, names, count in (("train", TRAIN_PHOTOS, samples_per_photo), ("val", VAL_PHOTOS, 1)):
        for name in names:
            for k in range(count):
                order = CHANNEL_ORDERS[k % 6] if split == "train" else (0, 1, 2)
                clean = photo(name)[..., list(order)]
                hazy, t, params = synthesize_haze(clean, rng)
                stem = f"{name}_{k}"
                write_image(os.path.join(root, split, "hazy", stem + ".png"), hazy)
                write_image(os.path.join(root, split, "clear", stem + ".png"), clean)
                write_image(os.path.join(root, split, "trans", stem + ".png"), t)
                samples.append({"split": split, "name": stem, "channels": list(order), **params})
    with open(manifest_path + ".tmp", "w") as f:
        json.dump({"settings": settings, "samples": samples}, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)
    return root
