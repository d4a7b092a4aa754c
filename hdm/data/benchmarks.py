"""The public benchmarks: their distributed sizes, which of them are test sets, and how a folder is
recognised as one of them.

A partial download is the commonest silent cause of a reproduction gap, so the readers compare what
they find with these counts, and training and `scripts/check_dataset.py` say when they differ.
`inputs` / `targets` count the files of the folder a reader is pointed at (for a held-out split,
the whole folder before it is split). Sources are the papers that introduced each set; `note` says
where a figure is uncertain or copies are known to differ. A set that a later release redistributes
in another layout with other counts (DehazeFormer's RESIDE, one ground-truth copy per hazy image)
lists that release in `copies`: a folder matches the set when its counts are those of the set or of
one of its copies.
"""
import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Copy:
    release: str       # who distributes the set this way, and under which folder
    inputs: int
    targets: int
    source: str
    note: str = ""


@dataclass(frozen=True)
class Benchmark:
    reader: str        # the dataset type that reads it
    inputs: int        # degraded images as distributed
    targets: int       # target images as distributed
    test_set: bool     # a published test split: never select checkpoints on it
    source: str
    note: str = ""
    copies: tuple = ()  # Copy: the same images redistributed with other counts


_RESIDE = "Li et al., RESIDE, TIP 2019"
_JORDER = "Yang et al., JORDER, CVPR 2017 (train/test split as in PReNet, CVPR 2019)"
_LOLV2 = "Yang et al., Sparse Gradient Regularized Deep Retinex Network, TIP 2021"
# DehazeFormer's release (Song et al., Vision Transformers for Single Image Dehazing, TIP 2023; the data links of
# the IDKiro/DehazeFormer README): RESIDE-IN/{train,test} (ITS, SOTS-indoor), RESIDE-OUT/{train,test} (OTS,
# SOTS-outdoor), RESIDE-6K/{train,test}, each hazy/<name> with GT/<name>: one GT copy per hazy image, same name
# (its datasets/loader.py lists GT/ and reads hazy/ by the same name). Its ITS is RESIDE v0's (its issue #26), with
# ITS's 13,990 pairs; RESIDE-6K is Shao et al.'s split (the set DehazeFormer's issue #21 names), its 6,000 / 1,000
# pairs as READMEs that train on DehazeFormer's copy restate them (not counted from the archive here).
_DEHAZEFORMER = "Song et al., DehazeFormer, TIP 2023 (IDKiro/DehazeFormer's data links)"
_RESIDE_6K = ("Shao et al., Domain Adaptation for Image Dehazing, CVPR 2020 (6,000 training pairs: 3,000 from ITS, "
              "3,000 from OTS; 1,000 test pairs from SOTS), as " + _DEHAZEFORMER + " ships it")
_RESIDE_6K_NOTE = "counts as READMEs that use DehazeFormer's copy state them, not counted from the archive"
BENCHMARKS = {
    "ITS": Benchmark("RESIDE", 13990, 1399, False, _RESIDE + " (ITS v2: 10 hazy images per clear image)",
                     copies=(Copy("DehazeFormer's RESIDE-IN/train", 13990, 13990, _DEHAZEFORMER,
                                  "RESIDE v0's ITS (IDKiro/DehazeFormer issue #26)"),)),
    "OTS": Benchmark("RESIDE", 313950, 8970, False, _RESIDE + " (RESIDE-beta OTS: 35 hazy images per clear image)",
                     "copies differ: some remove the clear images shared with SOTS-outdoor",
                     copies=(Copy("DehazeFormer's RESIDE-OUT/train", 313950, 313950, _DEHAZEFORMER,
                                  "uncertain: the release leaves out the images smaller than its 256x256 training "
                                  "patch (it lists their names in a text file) and does not state how many remain "
                                  "(IDKiro/DehazeFormer issue #26)"),)),
    "SOTS-indoor": Benchmark("RESIDE", 500, 50, True, _RESIDE,
                             copies=(Copy("DehazeFormer's RESIDE-IN/test", 500, 500, _DEHAZEFORMER,
                                          "ground truth already cropped to 620x460"),)),
    "SOTS-outdoor": Benchmark("RESIDE", 500, 500, True, _RESIDE),
    "RESIDE-6K-train": Benchmark("RESIDE", 6000, 6000, False, _RESIDE_6K, _RESIDE_6K_NOTE),
    "RESIDE-6K-test": Benchmark("RESIDE", 1000, 1000, True, _RESIDE_6K, _RESIDE_6K_NOTE),
    "NH-HAZE": Benchmark("NumberedHaze", 55, 55, False, "Ancuti et al., NH-HAZE, CVPRW 2020",
                         "numbers 51-55 are the test split of the common protocol"),
    "Dense-Haze": Benchmark("NumberedHaze", 55, 55, False, "Ancuti et al., Dense-Haze, ICIP 2019",
                            "numbers 51-55 are the test split of the common protocol"),
    "Rain100L-train": Benchmark("Rain", 200, 200, False, _JORDER),
    "Rain100L-test": Benchmark("Rain", 100, 100, True, _JORDER),
    "Rain100H-train": Benchmark("Rain", 1800, 1800, False, _JORDER, "RainTrainH as PReNet distributes it"),
    "Rain100H-test": Benchmark("Rain", 100, 100, True, _JORDER),
    "Rain200L-train": Benchmark("Rain", 1800, 1800, False, _JORDER),
    "Rain200L-test": Benchmark("Rain", 200, 200, True, _JORDER),
    "Rain200H-train": Benchmark("Rain", 1800, 1800, False, _JORDER),
    "Rain200H-test": Benchmark("Rain", 200, 200, True, _JORDER),
    "DID-train": Benchmark("SideBySide", 12000, 12000, False, "Zhang and Patel, DID-MDN, CVPR 2018",
                           "4,000 per density (Rain_Heavy, Rain_Medium, Rain_Light); one file holds each pair"),
    "DID-test": Benchmark("SideBySide", 1200, 1200, True, "Zhang and Patel, DID-MDN, CVPR 2018"),
    "LOL-train": Benchmark("LOL", 485, 485, False, "Wei et al., RetinexNet, BMVC 2018 (our485)"),
    "LOL-test": Benchmark("LOL", 15, 15, True, "Wei et al., RetinexNet, BMVC 2018 (eval15)"),
    "LOL-v2-real-train": Benchmark("LOL", 689, 689, False, _LOLV2),
    "LOL-v2-real-test": Benchmark("LOL", 100, 100, True, _LOLV2),
    "LOL-v2-synthetic-train": Benchmark("LOL", 900, 900, False, _LOLV2),
    "LOL-v2-synthetic-test": Benchmark("LOL", 100, 100, True, _LOLV2),
    "DICM": Benchmark("ImageFolder", 69, 0, True, "Lee et al., ICIP 2012",
                      "uncertain: copies with 64 images circulate"),
    "LIME": Benchmark("ImageFolder", 10, 0, True, "Guo et al., LIME, TIP 2017"),
    "MEF": Benchmark("ImageFolder", 17, 0, True, "Ma et al., TIP 2015", "uncertain: the count of the common copy"),
}


def tokens(path, depth=4):
    """Lower-case words of a path's last `depth` components, split at '_', '-', ' ' and '.'."""
    return _words(os.path.normpath(os.path.abspath(path)).split(os.sep)[-depth:])


def _words(parts):
    return [w for part in parts for w in re.split(r"[_\-\s.]+", part.lower()) if w]


def split_of(words):
    """'test' or 'train' from the last word that names a split, else None."""
    for word in reversed(words):
        if word in ("test", "testing", "eval15", "val") or word.startswith("test"):
            return "test"
        if word in ("train", "training", "our485") or word.startswith(("train", "raintrain")):
            return "train"
    return None


# DehazeFormer's set folders (RESIDE-IN, RESIDE-OUT, RESIDE-6K; also spelled out as reside-indoor, reside-outdoor):
# the word after 'reside' -> the benchmark of each split
_RESIDE_SETS = {"in": {"train": "ITS", "test": "SOTS-indoor"}, "indoor": {"train": "ITS", "test": "SOTS-indoor"},
                "out": {"train": "OTS", "test": "SOTS-outdoor"}, "outdoor": {"train": "OTS", "test": "SOTS-outdoor"},
                "6k": {"train": "RESIDE-6K-train", "test": "RESIDE-6K-test"}}


def _reside_set(words):
    """The split table of a DehazeFormer set folder named in `words` ('reside' then 'in', 'out' or '6k'), or None."""
    return next((_RESIDE_SETS[b] for a, b in zip(words, words[1:]) if a == "reside" and b in _RESIDE_SETS), None)


def _rain_name(word):
    """'Rain100L' ... 'Rain200H' from a path word ('rain100l', or MSPFN's test folder names 'r100h', 'r100l')."""
    m = re.fullmatch(r"rain(100|200)([lh])", word) or re.fullmatch(r"r(100)([lh])", word)
    return f"Rain{m[1]}{m[2].upper()}" if m else None


def _rule(reader, words, default_split=None):
    split = split_of(words) or default_split
    if reader == "RESIDE":
        if "sots" in words:
            return "SOTS-indoor" if "indoor" in words else "SOTS-outdoor" if "outdoor" in words else None
        sets = _reside_set(words)
        if sets:
            return sets.get(split)
        return "ITS" if "its" in words else "OTS" if "ots" in words else None
    if reader == "NumberedHaze":
        return "Dense-Haze" if "dense" in words else "NH-HAZE" if "nh" in words or "nhhaze" in words else None
    if reader == "Rain":
        if "raintrainh" in words:
            return "Rain100H-train"
        if "raintrainl" in words:
            return "Rain100L-train"
        name = next(filter(None, map(_rain_name, words)), None)
        return f"{name}-{split}" if name and split else None
    if reader == "SideBySide":
        return f"DID-{split}" if "did" in words and split else None
    if reader == "ImageFolder":
        return next((name for name in ("DICM", "LIME", "MEF") if name.lower() in words), None)
    return None


def guess(reader, roots, default_split=None):
    """The benchmark a folder (or the first of a list) most likely is, from the words of its path, the
    nearest folders first; None when unsure. `default_split` is the split to assume when the path names
    none (a reader gives it for a layout distributed for one split only: MSPFN's test folders). Readers
    refine this from what they find (OTS's part folders, ITS's trans/); a config names it with `benchmark:`."""
    root = roots if isinstance(roots, str) else roots[0]
    parts = os.path.normpath(os.path.abspath(root)).split(os.sep)
    for depth in range(1, 5):
        name = _rule(reader, _words(parts[-depth:]), default_split)
        if name:
            return name
    return None


def distributions(benchmark):
    """(label, inputs, targets, source, note) of every way a benchmark is distributed: the set itself,
    then its copies."""
    want = BENCHMARKS[benchmark]
    return [(benchmark, want.inputs, want.targets, want.source, want.note)] + [
        (f"{benchmark} as {c.release}", c.inputs, c.targets, c.source, c.note) for c in want.copies]


def count_line(name, benchmark, found):
    """One line: what was found against the distributed sizes (the set's or one of its copies'), and a
    warning when it matches none."""
    got = f"{found[0]:,} inputs / {found[1]:,} targets"
    if benchmark not in BENCHMARKS:
        return False, f"{name}: {got} (not a known benchmark: counts not checked)"
    ways = distributions(benchmark)
    for label, inputs, targets, source, _ in ways:
        if (inputs, targets) == tuple(found):
            return False, f"{name}: {got}, as distributed ({label}: {inputs:,} / {targets:,}; {source})"
    expected = " or ".join(f"{inputs:,} / {targets:,} ({'' if label == benchmark else label + '; '}{source}"
                           f"{'; ' + note if note else ''})" for label, inputs, targets, source, note in ways)
    return True, f"{name}: found {got}, but {benchmark} is distributed with {expected}: a partial or modified copy?"
