"""Datasets, built by name from an explicit table. Samples are dicts of RGB float tensors in [0, 1].

Constructor arguments: each has the kind of its default, or its annotation; a class states their
limits once, in LIMITS (hdm.kinds; the shared ones: PairedDataset.LIMITS), which the config check
(before work) and the constructor apply. A reader's error about one argument starts with its name
(`root: ...`), so the tools name the key (`data.train.root: ...`)."""
from hdm.build import build

from .haze_numbered import NumberedHaze
from .lol import LOL
from .paired import PairedFolder
from .rain import Rain, SideBySide
from .reside import RESIDE
from .synthetic import DarkenedFolder
from .unpaired import ImageFolder

DATASETS = {
    "PairedFolder": PairedFolder,   # any two folders whose images share names
    "RESIDE": RESIDE,               # ITS / OTS / SOTS indoor and outdoor / RESIDE-6K, also as DehazeFormer ships them
    "NumberedHaze": NumberedHaze,   # NH-HAZE, Dense-Haze
    "Rain": Rain,                   # Rain100L/H, Rain200L/H (also MSPFN's test folders)
    "SideBySide": SideBySide,       # DID-data (Rain1200)
    "LOL": LOL,                     # LOL our485 / eval15
    "ImageFolder": ImageFolder,     # unpaired: DICM, LIME, DarkFace, own photos
    "DarkenedFolder": DarkenedFolder,  # clean images darkened on the fly (Ren et al. 2019 protocol)
}


def build_dataset(cfg):
    """Build a dataset from a config dict {'type': name, **kwargs}; the dict is not modified."""
    return build(DATASETS, cfg, "dataset")


__all__ = ["DATASETS", "build_dataset", "PairedFolder", "RESIDE", "NumberedHaze", "Rain", "SideBySide", "LOL",
           "ImageFolder", "DarkenedFolder"]
