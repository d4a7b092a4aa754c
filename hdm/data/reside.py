"""RESIDE (Li et al., TIP 2019) as distributed: ITS / OTS for training, SOTS for testing.

    ITS/   hazy/<id>_<k>_<beta>.png    10 hazy versions per clear image
           clear/<id>.png
           trans/<id>_<k>.png          transmission maps (ITS only)
    OTS/   haze/part1 ... part4/<id>_<A>_<beta>.jpg   (the folder named haze/ or hazy/, nested or flat)
           clear/<id>.jpg
    SOTS/indoor/   hazy/<id>_<k>.png          gt/<id>.png   (some copies name it clear/; most copies
                                                             ship 640x480 gt for 620x460 hazy images)
    SOTS/outdoor/  hazy/<id>_<k>_<beta>.jpg   gt/<id>.png
    DehazeFormer's release (RESIDE-IN = ITS / SOTS-indoor, RESIDE-OUT = OTS / SOTS-outdoor, RESIDE-6K):
    RESIDE-IN/{train,test}/  hazy/<name>   GT/<name>         one GT copy per hazy image, of the same name
                                                            (SOTS-indoor's GT already cropped to 620x460)

A hazy image pairs with the clear image of its own name when the clear folder has images named as
hazy images (DehazeFormer's release), else with the clear image named by the part of its name before
the first '_'; with the transmission map named by the part before the second '_'. Pairing is by name,
never by order; a scene (for held-out validation splits) is the <id> before the first '_': a clear
image with all its hazy versions, held out together in either layout.
"""
import os
from typing import Optional

from hdm.kinds import check_arguments

from . import benchmarks
from .paired import PairedDataset, images_by_stem

LAYOUT = ("expected <root>/hazy/<id>_<k>[_<beta>].<ext> (or haze/, flat or in part folders) with <root>/clear/<id>.<ext> or "
          "<root>/gt/<id>.<ext>, or with <root>/GT/ holding an image of each hazy image's name (DehazeFormer's "
          "release), and <root>/trans/<id>_<k>.png for trans=true")


def _one_of(root, names):
    found = [n for n in names if os.path.isdir(os.path.join(root, n))]
    return found[0] if len(found) == 1 else None


class RESIDE(PairedDataset):
    """RESIDE ITS, OTS, SOTS (indoor/outdoor) or RESIDE-6K folder, as RESIDE or DehazeFormer's release
    distributes them.

    Args:
        root: the folder holding hazy/ (or haze/) and clear/ (or gt/, GT/).
        trans: also return the transmission map 'trans' (1, H, W) from trans/ (ITS ships them).
        crop, augment, crop_gt_border, holdout, take, benchmark: see PairedDataset.
    """

    def __init__(self, root: str, trans=False, crop: Optional[int] = None, augment=False, crop_gt_border=True,
                 holdout=0, take="rest", benchmark: Optional[str] = "auto"):
        check_arguments(RESIDE, locals())
        hazy_name, gt_name = _one_of(root, ("hazy", "haze")), _one_of(root, ("clear", "gt", "GT"))
        if hazy_name is None or gt_name is None:
            found = sorted(os.listdir(root)) if os.path.isdir(root) else "no such folder"
            raise FileNotFoundError(f"root: {root}: {LAYOUT}; found {found}")
        hazy_dir = os.path.join(root, hazy_name)
        hazy, clear = images_by_stem(hazy_dir, recursive=True), images_by_stem(os.path.join(root, gt_name))
        nested = any(os.path.dirname(p) != hazy_dir for p in hazy.values())
        if trans and not os.path.isdir(os.path.join(root, "trans")):
            raise FileNotFoundError(f"root: {root}: trans=true but there is no trans/ folder; {LAYOUT}")
        maps = images_by_stem(os.path.join(root, "trans")) if trans else {}
        same_names = bool(set(hazy) & set(clear))  # DehazeFormer's release: one GT copy per hazy image
        samples, scenes, problems = [], [], []
        for stem, path in sorted(hazy.items()):
            parts = stem.split("_")
            gt = clear.get(stem if same_names else parts[0])
            tmap = maps.get("_".join(parts[:2])) if trans else None
            if gt is None or (trans and tmap is None):
                problems.append(stem)
                continue
            samples.append((path, gt, tmap))
            scenes.append(parts[0])
        if not samples or problems:
            raise ValueError(f"root: {root}: {len(problems)} of {len(hazy)} hazy images have no clear image"
                             f"{' of the same name' if same_names else ''}{' or transmission map' if trans else ''} "
                             f"(e.g. {problems[:3]}); {LAYOUT}")
        recognised = benchmarks.guess("RESIDE", root) or (
            "OTS" if nested else "ITS" if os.path.isdir(os.path.join(root, "trans")) else None)
        version = (f"{hazy_name}/{' in part folders' if nested else ''} with {gt_name}/"
                   f"{' of the same names' if same_names else ''}{' and trans/' if trans else ''}")
        self._setup(root, samples, scenes, (len(hazy), len(clear)), LAYOUT, version, benchmark=benchmark,
                    recognised=recognised, holdout=holdout, take=take, crop=crop, augment=augment,
                    crop_gt_border=crop_gt_border)
