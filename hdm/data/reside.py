"""RESIDE (Li et al., TIP 2019) as distributed: ITS / OTS for training, SOTS for testing.

    ITS/   hazy/<id>_<k>_<beta>.png    10 hazy versions per clear image
           clear/<id>.png
           trans/<id>_<k>.png          transmission maps (ITS only)
    SOTS/indoor/   hazy/<id>_<k>.png          gt/<id>.png   (some copies name it clear/)
    SOTS/outdoor/  hazy/<id>_<k>_<beta>.jpg   gt/<id>.png

A hazy image pairs with the clear image named by the part of its name before the first '_', and with
the transmission map named by the part before the second '_'. Pairing is by name, never by order.
"""
import os

from .paired import PairedDataset, images_by_stem

LAYOUT = ("expected <root>/hazy/<id>_<k>[_<beta>].<ext> with <root>/clear/<id>.<ext> or <root>/gt/<id>.<ext> "
          "(and <root>/trans/<id>_<k>.png for trans=true)")


class RESIDE(PairedDataset):
    """RESIDE ITS, OTS or SOTS (indoor/outdoor) folder.

    Args:
        root: the folder holding hazy/ and clear/ (or gt/).
        trans: also return the transmission map 'trans' (1, H, W) from trans/ (ITS ships them).
        crop, augment: training crop size and flips/rotation, shared by the pair (and the map).
    """

    def __init__(self, root, trans=False, crop=None, augment=False):
        self.crop, self.augment = crop, augment
        hazy_dir = os.path.join(root, "hazy")
        gt_dirs = [d for d in ("clear", "gt") if os.path.isdir(os.path.join(root, d))]
        if not os.path.isdir(hazy_dir) or len(gt_dirs) != 1:
            found = sorted(os.listdir(root)) if os.path.isdir(root) else "no such folder"
            raise FileNotFoundError(f"{root}: {LAYOUT}; found {found}")
        hazy, clear = images_by_stem(hazy_dir), images_by_stem(os.path.join(root, gt_dirs[0]))
        if trans and not os.path.isdir(os.path.join(root, "trans")):
            raise FileNotFoundError(f"{root}: trans=true but there is no trans/ folder; {LAYOUT}")
        maps = images_by_stem(os.path.join(root, "trans")) if trans else {}
        self.samples, problems = [], []
        for stem, path in sorted(hazy.items()):
            parts = stem.split("_")
            gt = clear.get(parts[0])
            tmap = maps.get("_".join(parts[:2])) if trans else None
            if gt is None or (trans and tmap is None):
                problems.append(stem)
                continue
            self.samples.append((path, gt, tmap))
        if not self.samples or problems:
            raise ValueError(f"{root}: {len(problems)} of {len(hazy)} hazy images have no clear image"
                             f"{' or transmission map' if trans else ''} (e.g. {problems[:3]}); {LAYOUT}")
