"""A folder of degraded images with no targets (DICM, LIME, MEF, DarkFace, your own photos)."""
from typing import Optional

from hdm.image_io import image_header, images_in, read_image
from hdm.kinds import check_arguments

from . import benchmarks
from .io import to_tensor
from .paired import PairedDataset


class ImageFolder(PairedDataset):
    """Every image file in `root` (sorted by name; with recursive, in its sub-folders too).
    benchmark: see PairedDataset. Returns {'lq', 'lq_path'}."""

    def __init__(self, root: str, recursive=False, benchmark: Optional[str] = "auto"):
        check_arguments(ImageFolder, locals())
        files = images_in(root, recursive)
        if not files:
            raise ValueError(f"root: {root}: expected a folder of images (.png, .jpg, .bmp, .tif); found none")
        self._setup(root, [(f, None, None) for f in files], files, (len(files), 0), "a folder of images",
                    "one folder" + (" and its sub-folders" if recursive else ""), benchmark=benchmark,
                    recognised=benchmarks.guess("ImageFolder", root), holdout=0, take="rest", crop=None,
                    augment=False, crop_gt_border=False)

    @property
    def files(self):
        return [lq for lq, _, _ in self.samples]

    def _check_sample(self, path, _gt, _trans):
        h, w, colour = image_header(path)
        return None, 0, int(not colour), (h, w)

    def __getitem__(self, index):
        path = self.samples[index][0]
        return {"lq": to_tensor(read_image(path)), "lq_path": path}
