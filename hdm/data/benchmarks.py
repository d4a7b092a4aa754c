"""The public benchmarks: their distributed sizes, which of them are test sets, and how a folder is
recognised as one of them.

A partial download is the commonest silent cause of a reproduction gap, so the readers compare what
they find with these counts, and training and `scripts/check_dataset.py` say when they differ.
`inputs` / `targets` count the files of the folder a reader is pointed at (for a held-out split,
the whole folder before it is split). Sources are the papers that introduced each set; `note` says
where a figure is uncertain or copies are known to differ.
"""
import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    reader: str        # the dataset type that reads it
    inputs: int        # degraded images as distributed
    targets: int       # target images as distributed
    test_set: bool     # a published test split: never select checkpoints on it
    source: str
    note: str = ""


_RESIDE = "Li et al., RESIDE, TIP 2019"
_JORDER = "Yang et al., JORDER, CVPR 2017 (train/test split as in PReNet, CVPR 2019)"
_LOLV2 = "Yang et al., Sparse Gradient Regularized Deep Retinex Network, TIP 2021"
BENCHMARKS = {
    "ITS": Benchmark("RESIDE", 13990, 1399, False, _RESIDE + " (ITS v2: 10 hazy images per clear image)"),
    "OTS": Benchmark("RESIDE", 313950, 8970, False, _RESIDE + " (RESIDE-beta OTS: 35 hazy images per clear image)",
                     "copies differ: some remove the clear images shared with SOTS-outdoor"),
    "SOTS-indoor": Benchmark("RESIDE", 500, 50, True, _RESIDE),
    "SOTS-outdoor": Benchmark("RESIDE", 500, 500, True, _RESIDE),
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


def _rule(reader, words):
    split = split_of(words)
    if reader == "RESIDE":
        if "sots" in words:
            return "SOTS-indoor" if "indoor" in words else "SOTS-outdoor" if "outdoor" in words else None
        return "ITS" if "its" in words else "OTS" if "ots" in words else None
    if reader == "NumberedHaze":
        return "Dense-Haze" if "dense" in words else "NH-HAZE" if "nh" in words or "nhhaze" in words else None
    if reader == "Rain":
        if "raintrainh" in words:
            return "Rain100H-train"
        if "raintrainl" in words:
            return "Rain100L-train"
        name = next((f"Rain{w[4:7]}{w[7].upper()}" for w in words if re.fullmatch(r"rain(100|200)[lh]", w)), None)
        return f"{name}-{split}" if name and split else None
    if reader == "SideBySide":
        return f"DID-{split}" if "did" in words and split else None
    if reader == "ImageFolder":
        return next((name for name in ("DICM", "LIME", "MEF") if name.lower() in words), None)
    return None


def guess(reader, roots):
    """The benchmark a folder (or the first of a list) most likely is, from the words of its path, the
    nearest folders first; None when unsure. Readers refine this from what they find (OTS's part
    folders, ITS's trans/); a config names it with `benchmark:`."""
    root = roots if isinstance(roots, str) else roots[0]
    parts = os.path.normpath(os.path.abspath(root)).split(os.sep)
    for depth in range(1, 5):
        name = _rule(reader, _words(parts[-depth:]))
        if name:
            return name
    return None


def count_line(name, benchmark, found):
    """One line: what was found against the distributed size, and a warning when they differ."""
    want = BENCHMARKS.get(benchmark)
    got = f"{found[0]:,} inputs / {found[1]:,} targets"
    if want is None:
        return False, f"{name}: {got} (not a known benchmark: counts not checked)"
    expected = f"{want.inputs:,} / {want.targets:,}"
    if (want.inputs, want.targets) == tuple(found):
        return False, f"{name}: {got}, as distributed ({benchmark}: {expected}; {want.source})"
    return True, (f"{name}: found {got}, but {benchmark} is distributed with {expected} ({want.source}"
                  f"{'; ' + want.note if want.note else ''}): a partial or modified copy?")
