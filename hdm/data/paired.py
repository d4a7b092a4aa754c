"""Paired readers: the shared base (pairing, held-out validation splits, the target-border rule, the
header check before work) and `PairedFolder`, two folders whose images share names."""
import collections
import os
import re
from typing import Optional

import numpy as np
from torch.utils.data import Dataset

from hdm.errors import shown
from hdm.identity import path_key, set_fingerprint
from hdm.image_io import image_header, images_in, read_gray, read_image
from hdm.kinds import PATH, OneOf, Range, check_arguments

from . import benchmarks
from .io import to_tensor
from .transforms import paired_augment, paired_random_crop

# A target larger than its input by the same border b on every side (SOTS-indoor's clean NYU frames
# keep a 10-pixel white border: 640x480 targets for 620x460 hazy images) is centre-cropped to the
# input, as FFA-Net's loader does. Larger borders, unequal or odd differences are errors.
MAX_BORDER = 32
TAKES = ("rest", "holdout")
HOLDOUT_SEED = 0  # fixed: the training and the validation section of a config must draw the same scenes
BORDER_HELP = ("expected equal sizes, or a target larger by the same border of at most "
               f"{MAX_BORDER} pixels on every side (centre-cropped unless crop_gt_border=false)")


def target_border(lq_hw, gt_hw):
    """The border b (> 0) by which the target exceeds the input on every side, 0 for equal sizes, None
    for any other difference."""
    dh, dw = gt_hw[0] - lq_hw[0], gt_hw[1] - lq_hw[1]
    if dh == dw == 0:
        return 0
    return dh // 2 if dh == dw and dh > 0 and dh % 2 == 0 and dh // 2 <= MAX_BORDER else None


def size_problem(lq_path, gt_path, lq_hw, gt_hw, crop_gt_border, layout=""):
    """None when the pair's sizes fit (after the border rule), else the one-line problem."""
    border = target_border(lq_hw, gt_hw)
    if border == 0 or (border and crop_gt_border):
        return None
    return (f"{shown(lq_path)} ({lq_hw[0]}x{lq_hw[1]}) and its target {shown(gt_path)} ({gt_hw[0]}x{gt_hw[1]}) differ in size; "
            f"{BORDER_HELP}{'; layout: ' + layout if layout else ''}")


def load_sample(lq_path, gt_path, trans_path=None, crop=None, augment=False, crop_gt_border=True):
    """Read one pair (and its transmission map), apply the border rule and the shared crop and
    augmentation, return the sample dict."""
    lq, gt = read_image(lq_path), read_image(gt_path)
    if lq.shape != gt.shape:
        problem = size_problem(lq_path, gt_path, lq.shape[:2], gt.shape[:2], crop_gt_border)
        if problem:
            raise ValueError(problem)
        b = target_border(lq.shape[:2], gt.shape[:2])
        gt = np.ascontiguousarray(gt[b:-b, b:-b])
    images = [lq, gt] + ([read_gray(trans_path)] if trans_path else [])
    if crop:
        images = paired_random_crop(images, crop, lq_path)
    if augment:
        images = paired_augment(images)
    sample = {"lq": to_tensor(images[0]), "gt": to_tensor(images[1]), "lq_path": lq_path, "gt_path": gt_path}
    if trans_path:
        sample["trans"] = to_tensor(images[2])
    return sample


def natural_key(text):
    """'img10' after 'img9': digit runs compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part]


def holdout_scenes(scenes, holdout):
    """The `holdout` scene keys set aside for validation: a permutation with a fixed seed of the
    sorted distinct keys, so every section of a config (and every run) draws the same ones."""
    ids = sorted(set(scenes), key=natural_key)
    if holdout >= len(ids):
        raise ValueError(f"holdout: {holdout} leaves no training scene: the folder has {len(ids)} scenes")
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(ids))
    return {ids[i] for i in order[:holdout]}


# sizes: Counter of the inputs' (height, width); smallest: (height, width, path) of the input with the
# smallest side, or None when no sample was read
CheckReport = collections.namedtuple("CheckReport", "pairs problems border_pairs border grey sizes smallest")


def _read_once(samples):
    """ValueError when one input file is two samples of a set (a folder listed twice, under another spelling
    or through a link: hdm.identity.path_key)."""
    seen = {}
    for sample in samples:
        key = path_key(sample[0])
        if key in seen:
            raise ValueError(f"{shown(seen[key])} and {shown(sample[0])}: one file read twice in one set; list each "
                             f"folder once")
        seen[key] = sample[0]


class PairedDataset(Dataset):
    """Base of the paired readers. A subclass finds its files and calls `_setup` with the pairs
    (lq_path, gt_path, trans_path or None), one scene key per pair (pairs of a scene are held out
    together), the files it found, and what it recognised; loading, crops, the border rule, held-out
    splits and the header check are shared.

    Arguments every paired reader takes:
        crop, augment: training crop size (None: whole images) and random flips/rotation.
        crop_gt_border: centre-crop a target larger than its input by an equal border (SOTS-indoor).
        holdout: scenes set aside for validation (0: none); take: 'rest' (the others, for training)
            or 'holdout' (the held-out scenes, for validation). Use the same holdout in both sections.
        benchmark: the public set the folder is ('auto': recognised from its path and layout; a name of
            hdm.data.benchmarks.BENCHMARKS; None: none), for the count check and test-set warnings.
    The limits of these arguments are LIMITS (hdm.kinds); each reader's constructor checks its own
    arguments with them first (check_arguments).
    """

    LIMITS = {"crop": Range(1), "holdout": Range(0), "take": OneOf(TAKES),
              "benchmark": OneOf(("auto", *benchmarks.BENCHMARKS)), "root": PATH, "lq_dir": PATH, "gt_dir": PATH,
              "trans_dir": PATH}

    samples, scenes = (), ()
    crop, augment, crop_gt_border = None, False, True
    root, layout, version, benchmark, found, split = "", "", "", None, (0, 0), None

    def _setup(self, root, samples, scenes, found, layout, version, *, benchmark, recognised, holdout, take,
               crop, augment, crop_gt_border):
        if take == "holdout" and holdout <= 0:
            raise ValueError("take: 'holdout' needs holdout > 0 (the number of scenes set aside)")
        self.root, self.layout, self.version, self.found = root, layout, version, tuple(found)
        self.benchmark = recognised if benchmark == "auto" else benchmark
        self.holdout, self.take = holdout, take
        self.crop, self.augment, self.crop_gt_border = crop, augment, crop_gt_border
        _read_once(samples)
        if holdout:
            held = holdout_scenes(scenes, holdout)
            keep = [i for i, s in enumerate(scenes) if (s in held) == (take == "holdout")]
            samples, scenes = [samples[i] for i in keep], [scenes[i] for i in keep]
        self.samples, self.scenes = list(samples), list(scenes)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return load_sample(*self.samples[index], crop=self.crop, augment=self.augment,
                           crop_gt_border=self.crop_gt_border)

    @property
    def is_test_set(self):
        """Whether these samples are (or include) a published test split: never select on them."""
        if self.take == "holdout":
            return False
        entry = benchmarks.BENCHMARKS.get(self.benchmark)
        return bool(entry and entry.test_set) or self.split == "test"

    def inputs(self):
        """The input file of every sample, distinct."""
        return list(dict.fromkeys(lq for lq, _, _ in self.samples))

    def targets(self):
        """The target file of every sample (the input itself for samples without one), distinct."""
        return list(dict.fromkeys(gt or lq for lq, gt, _ in self.samples))

    def fingerprint(self):
        """hdm.identity.set_fingerprint of the samples (computed once): equal for a moved copy."""
        if getattr(self, "_fingerprint", None) is None:
            self._fingerprint = set_fingerprint(self.samples)
        return self._fingerprint

    def describe(self):
        """What was read, for logs, checkpoints and result files."""
        return {"type": type(self).__name__, "root": self.root, "benchmark": self.benchmark, "version": self.version,
                "split": self.split, "holdout": self.holdout, "take": self.take, "samples": len(self),
                "test_set": self.is_test_set, "fingerprint": self.fingerprint()}

    def _check_sample(self, lq, gt, trans):
        """(problem or None, border, grey images) of one sample, from the files' headers."""
        lh, lw, lc = image_header(lq)
        gh, gw, gc = image_header(gt)
        problem = size_problem(lq, gt, (lh, lw), (gh, gw), self.crop_gt_border, self.layout)
        if problem is None and trans:
            th, tw, _ = image_header(trans)
            if (th, tw) != (lh, lw):
                problem = f"{shown(trans)} ({th}x{tw}): the transmission map of {shown(lq)} ({lh}x{lw}) must have its size"
        return problem, target_border((lh, lw), (gh, gw)) or 0, (not lc) + (not gc), (lh, lw)

    def check(self, first_only=True):
        """Check every sample from the image headers (no pixel is decoded): readable, not truncated,
        sizes paired after the border rule, transmission maps sized like their inputs. With
        first_only, the first problem raises ValueError (one line naming the files); otherwise all are
        collected. Returns a CheckReport (pairs, problems, border_pairs, border, grey, sizes, smallest)."""
        problems, border_pairs, borders, grey, sizes = [], 0, set(), 0, collections.Counter()
        smallest = None
        for sample in self.samples:
            try:
                problem, border, n_grey, size = self._check_sample(*sample)
            except OSError as err:
                problem, border, n_grey, size = str(err), 0, 0, None
            if problem:
                if first_only:
                    raise ValueError(problem)
                problems.append(problem)
                continue
            if border:
                border_pairs += 1
                borders.add(border)
            grey += n_grey
            sizes[size] += 1
            if smallest is None or min(size) < min(smallest[:2]):
                smallest = (*size, sample[0])
        return CheckReport(len(self.samples), problems, border_pairs, sorted(borders), grey, sizes, smallest)


def images_by_stem(folder, recursive=False):
    """{file name without extension: path} of the images in a folder; two files with one stem
    (`a.png` and `a.jpg`) are an error naming both."""
    out = {}
    for path in images_in(folder, recursive):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in out:
            raise ValueError(f"{shown(out[stem])} and {shown(path)}: two images with the name {shown(stem)!r}; expected "
                             f"one per name")
        out[stem] = path
    return out


def numbered(names, pattern):
    """{number: path} for the files whose name matches `pattern` (a regex with one group of digits)."""
    out = {}
    for name, path in names.items():
        m = re.fullmatch(pattern, name)
        if m:
            n = int(m.group(1))
            if n in out:
                raise ValueError(f"{shown(out[n])} and {shown(path)}: two images with the number {n}; expected one per number")
            out[n] = path
    return out


def check_pairs(root, lq, gt, layout):
    """Pairs of two {key: path} dicts, sorted by key; one clear error naming the layout otherwise."""
    missing_gt, missing_lq = sorted(set(lq) - set(gt)), sorted(set(gt) - set(lq))
    if not lq or missing_gt or missing_lq:
        raise ValueError(f"root: {shown(root)}: expected {layout}; found {len(lq)} inputs and {len(gt)} targets"
                         f"{f', inputs without target: {missing_gt[:5]}' if missing_gt else ''}"
                         f"{f', targets without input: {missing_lq[:5]}' if missing_lq else ''}")
    keys = sorted(lq, key=natural_key)
    return [(lq[k], gt[k], None) for k in keys], keys


class PairedFolder(PairedDataset):
    """`lq_dir/<name>.<ext>` paired with `gt_dir/<name>.<ext'>` (same stem; extensions may differ).

    Args:
        lq_dir, gt_dir: folders of degraded and target images.
        trans_dir: optional folder of transmission maps with the same names (grey images), returned
            as 'trans' (1, H, W) for depth-binned region masks.
        crop, augment, crop_gt_border, holdout, take, benchmark: see PairedDataset (a scene is a name).
    Returns dicts {'lq', 'gt': (3, H, W) float in [0, 1], 'lq_path', 'gt_path'[, 'trans']}.
    """

    def __init__(self, lq_dir: str, gt_dir: str, trans_dir: Optional[str] = None, crop: Optional[int] = None,
                 augment=False, crop_gt_border=True, holdout=0, take="rest", benchmark: Optional[str] = "auto"):
        check_arguments(PairedFolder, locals())
        lq, gt = images_by_stem(lq_dir), images_by_stem(gt_dir)
        trans = images_by_stem(trans_dir) if trans_dir else None
        unpaired = sorted(set(lq) ^ set(gt))
        if not lq or unpaired:
            raise ValueError(f"{lq_dir} and {gt_dir}: expected images with the same names in both; "
                             f"found {len(lq)} and {len(gt)} images, unpaired: {unpaired[:5]}")
        if trans is not None and set(trans) != set(lq):
            raise ValueError(f"{trans_dir}: expected one transmission map per input of {lq_dir}; "
                             f"missing: {sorted(set(lq) - set(trans))[:5]}")
        keys = sorted(lq, key=natural_key)
        self._setup(lq_dir, [(lq[k], gt[k], trans[k] if trans else None) for k in keys], keys, (len(lq), len(gt)),
                    "lq_dir/<name>.<ext> with gt_dir/<name>.<ext>", "two folders, paired by name",
                    benchmark=benchmark, recognised=None, holdout=holdout, take=take, crop=crop, augment=augment,
                    crop_gt_border=crop_gt_border)
