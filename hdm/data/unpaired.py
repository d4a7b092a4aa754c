"""A folder of degraded images with no targets (DICM, LIME, DarkFace, your own photos)."""
from torch.utils.data import Dataset

from .io import images_in, read_image, to_tensor


class ImageFolder(Dataset):
    """Every image file in `root` (sorted by name, not recursive). Returns {'lq', 'lq_path'}."""

    def __init__(self, root):
        self.files = images_in(root)
        if not self.files:
            raise ValueError(f"{root}: expected a folder of images (.png, .jpg, .bmp, .tif); found none")

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        return {"lq": to_tensor(read_image(self.files[index])), "lq_path": self.files[index]}
