"""Embedded demo data: degradations synthesised on real photos that scikit-image ships.

Training photos: astronaut, coffee, rocket; validation: chelsea (never seen in training). Training
sample k of a photo uses the photo with its colour channels in the k-th of the six orders (RGB,
RBG, GRB, ...): three photos alone teach a network their colours, and channel orders widen the
colour content at no cost to the degradation models (each acts on the channels alike).

- haze: I = J t + A (1 - t), t = exp(-beta d); d a smooth random depth field in [0.2, 1.6] (a random
  tilted ramp plus three low-frequency cosine waves), beta ~ U(0.6, 1.4), A ~ U(0.75, 0.95) with a
  per-channel tint ~ U(-0.03, 0.03). Written with the transmission map, as RESIDE ITS ships it.
- rain (Rain100L-like, I = B + S): sparse random drops (density ~ U(0.002, 0.006)) motion-blurred
  along one direction (angle ~ U(-30, 30) degrees from vertical, length ~ U(15, 35) px), scaled to a
  peak brightness ~ U(0.5, 0.9), added to the image and clipped.
- lowlight (the hybrid network's protocol, Ren et al. TIP 2019): I = J^gamma + n, gamma ~ U(2, 4),
  n Gaussian with sigma ~ U(0, 0.02), clipped.
Layouts are those of the public sets, so the same readers load them: RESIDE-like folders for haze,
the one-folder Rain layout for rain, LOL's our485/eval15 for low light.
"""
import itertools
import json
import math
import os

import cv2
import numpy as np
from skimage import data as skdata

from hdm.files import atomic_write
from hdm.image_io import write_image

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket")
VAL_PHOTOS = ("chelsea",)
CHANNEL_ORDERS = tuple(itertools.permutations(range(3)))
DEPTH_RANGE, BETA_RANGE, AIRLIGHT_RANGE, TINT = (0.2, 1.6), (0.6, 1.4), (0.75, 0.95), 0.03
RAIN_DENSITY, RAIN_ANGLE, RAIN_LENGTH, RAIN_PEAK = (0.002, 0.006), (-30.0, 30.0), (15, 35), (0.5, 0.9)
GAMMA_RANGE, NOISE_RANGE = (2.0, 4.0), (0.0, 0.02)


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
    """Hazy version of a clean (H, W, 3) image. Returns (hazy, extras {'trans': t}, params)."""
    h, w = clean.shape[:2]
    beta = rng.uniform(*BETA_RANGE)
    airlight = rng.uniform(*AIRLIGHT_RANGE) + rng.uniform(-TINT, TINT, 3)
    t = np.exp(-beta * smooth_depth(h, w, rng))[..., None]
    hazy = np.clip(clean * t + airlight * (1 - t), 0, 1).astype(np.float32)
    return hazy, {"trans": t[..., 0].astype(np.float32)}, {"beta": float(beta), "airlight": airlight.round(4).tolist()}


def rain_streaks(h, w, rng):
    """A rain-streak layer (H, W) in [0, peak]: sparse drops blurred along one direction."""
    density, angle = rng.uniform(*RAIN_DENSITY), rng.uniform(*RAIN_ANGLE)
    length = int(rng.integers(RAIN_LENGTH[0], RAIN_LENGTH[1] + 1))
    drops = (rng.random((h, w)) < density) * rng.uniform(0.5, 1.0, (h, w))
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dy, dx = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for s in np.linspace(-c, c, 2 * length):
        kernel[int(round(c + s * dy)), int(round(c + s * dx))] = 1.0
    streaks = cv2.filter2D(drops.astype(np.float32), -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    streaks = cv2.GaussianBlur(streaks, (3, 3), 0.8)
    peak = rng.uniform(*RAIN_PEAK)
    return streaks * (peak / max(float(streaks.max()), 1e-6)), {"density": float(density), "angle": float(angle),
                                                                "length": length, "peak": float(peak)}


def synthesize_rain(clean, rng):
    """Rainy version of a clean image: clip(B + S). Returns (rainy, {}, params)."""
    streaks, params = rain_streaks(*clean.shape[:2], rng)
    return np.clip(clean + streaks[..., None], 0, 1).astype(np.float32), {}, params


def synthesize_lowlight(clean, rng):
    """Low-light version: clip(J^gamma + n). Returns (dark, {}, params)."""
    gamma, sigma = rng.uniform(*GAMMA_RANGE), rng.uniform(*NOISE_RANGE)
    dark = clean ** gamma + rng.normal(0, sigma, clean.shape)
    return np.clip(dark, 0, 1).astype(np.float32), {}, {"gamma": float(gamma), "sigma": float(sigma)}


def _haze_paths(split, stem, index):
    return {"lq": f"{split}/hazy/{stem}.png", "gt": f"{split}/clear/{stem}.png", "trans": f"{split}/trans/{stem}.png"}


def _rain_paths(split, stem, index):
    return {"lq": f"{split}/rain-{index}.png", "gt": f"{split}/norain-{index}.png"}


def _lowlight_paths(split, stem, index):
    folder = "our485" if split == "train" else "eval15"
    return {"lq": f"{folder}/low/{stem}.png", "gt": f"{folder}/high/{stem}.png"}


TASKS = {
    # task: (synthesis, relative paths of one sample from (split, name stem, running index))
    "haze": (synthesize_haze, _haze_paths),
    "rain": (synthesize_rain, _rain_paths),
    "lowlight": (synthesize_lowlight, _lowlight_paths),
}


def make_demo(task, root, samples_per_photo=12, seed=0):
    """Write the demo pairs of one task under root (see the module docstring for the layouts).

    Idempotent: nothing is rewritten when root/manifest.json records the same settings.
    """
    if task not in TASKS:
        raise ValueError(f"unknown demo task {task!r}; valid: {', '.join(TASKS)}")
    synthesize, paths = TASKS[task]
    manifest_path = os.path.join(root, "manifest.json")
    settings = json.loads(json.dumps({"task": task, "samples_per_photo": samples_per_photo, "seed": seed,
                                      "train": TRAIN_PHOTOS, "val": VAL_PHOTOS}))
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            if json.load(f).get("settings") == settings:
                return root
    rng = np.random.default_rng(seed)
    samples, index = [], 0
    for split, names, count in (("train", TRAIN_PHOTOS, samples_per_photo), ("val", VAL_PHOTOS, 1)):
        for name in names:
            for k in range(count):
                order = CHANNEL_ORDERS[k % 6] if split == "train" else (0, 1, 2)
                clean = photo(name)[..., list(order)]
                degraded, extras, params = synthesize(clean, rng)
                index += 1
                rel = paths(split, f"{name}_{k}", index)
                write_image(os.path.join(root, rel["lq"]), degraded)
                write_image(os.path.join(root, rel["gt"]), clean)
                for key, value in extras.items():
                    write_image(os.path.join(root, rel[key]), value)
                samples.append({"split": split, "source": name, "channels": list(order), **rel, **params})
    with atomic_write(manifest_path, "w") as f:
        json.dump({"settings": settings, "samples": samples}, f, indent=1)
    return root

