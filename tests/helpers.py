"""Small data the tests make: real photos from scikit-image with synthetic haze."""
import importlib.util
import os

import cv2
import numpy as np
import torch
from skimage import data


def hazy_photo(name="chelsea", beta=1.2, airlight=0.9, size=None):
    """A real photo with synthetic haze whose transmission falls from top to bottom-right.

    Returns (hazy uint8 HxWx3, transmission HxW float64)."""
    clean = getattr(data, name)().astype(np.float64) / 255
    if size is not None:
        clean = cv2.resize(clean, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    h, w = clean.shape[:2]
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    depth = 0.2 + 1.6 * (0.7 * (1 - yy) + 0.3 * xx)
    t = np.exp(-beta * depth)
    hazy = clean * t[..., None] + airlight * (1 - t[..., None])
    return np.clip(np.round(hazy * 255), 0, 255).astype(np.uint8), t


def to_tensor(img_uint8, dtype=torch.float32):
    return torch.from_numpy(img_uint8).permute(2, 0, 1).unsqueeze(0).to(dtype) / 255


def released_listing(name):
    """(key, shape) of every entry of a released checkpoint, from tests/data/<name>_official_state_dict.txt."""
    import os
    rows = []
    with open(os.path.join(os.path.dirname(__file__), "data", f"{name}_official_state_dict.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            key, shape = line.rstrip("\n").split("\t")
            rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(rel):
    """A repository script by its path without .py (a bare `import test` could find the stdlib's package)."""
    spec = importlib.util.spec_from_file_location("hdm_script_" + rel.replace("/", "_"), os.path.join(ROOT, rel + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def marked_image(path, value=None, size=(12, 16), border=0, rng=np.random.default_rng(0)):
    """Write a random image whose top-left pixel (inside `border`) encodes `value`, so tests can check
    who paired with whom (`marked_value` reads it back from a sample's tensor)."""
    from hdm.image_io import write_image

    a = rng.random((size[0] + 2 * border, size[1] + 2 * border, 3)) * 0.5
    if value is not None:
        a[border, border] = value / 255.0
    write_image(path, a)


def marked_value(t):
    return round(float(t[0, 0, 0]) * 255)


def assert_paired(ds):
    """Every sample's input and target carry the same mark."""
    for i in range(len(ds)):
        s = ds[i]
        assert marked_value(s["lq"]) == marked_value(s["gt"]), (s["lq_path"], s["gt_path"])


def run_cli(main, argv, capsys):
    """(exit code, stderr lines) of a tool run as from the command line."""
    import pytest

    from hdm.cli import console

    with pytest.raises(SystemExit) as exit_info:
        console(main, argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


class held_folder:
    """A live process (a subprocess) that holds `folder`'s lock (hdm.locks.FolderLock) until the block ends,
    then is killed: the lock goes with it."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __enter__(self):
        import subprocess
        import sys

        os.makedirs(self.folder, exist_ok=True)
        code = ("import sys, time; from hdm.locks import FolderLock; FolderLock(sys.argv[1]).acquire(); "
                "print('held', flush=True); time.sleep(300)")
        self.proc = subprocess.Popen([sys.executable, "-c", code, self.folder], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"
        return self.proc

    def __exit__(self, *_):
        self.proc.kill()
        self.proc.wait()


SPELLINGS = ("as_is", "dot", "double_slash", "absolute", "relative", "symlink", "hardlink", "parent_and_back")


def spell(path, how, tmp_path):
    """Another way of writing `path` (a file or folder under tmp_path)."""
    head, tail = os.path.split(path)
    if how == "dot":
        return os.path.join(head, ".", tail)
    if how == "double_slash":
        return head + "//" + tail
    if how == "absolute":
        return os.path.abspath(path)
    if how == "relative":
        return os.path.relpath(path)
    if how == "symlink":
        link = tmp_path / f"link_{len(os.listdir(tmp_path))}"
        os.symlink(path, link)
        return str(link)
    if how == "hardlink" and os.path.isfile(path):
        link = tmp_path / f"hard_{len(os.listdir(tmp_path))}"
        os.link(path, link)
        return str(link)
    if how == "parent_and_back":
        return os.path.join(head, os.pardir, os.path.basename(head), tail)
    return path


def lpips_weight_files(folder, net):
    """Random weights in torchvision's and LPIPS's file layouts (no real ones can be had offline), written
    into `folder`; returns the lpips preset's options naming them."""
    from hdm.losses.vgg import CONFIGS
    from hdm.metrics.lpips import CHANNELS, alexnet_features

    if net == "alex":
        backbone = {f"features.{k}": v for k, v in alexnet_features().state_dict().items()}
    else:
        backbone, i, c_in = {}, 0, 3
        for v in CONFIGS["vgg16"]:
            if v == "M":
                i += 1
                continue
            backbone[f"features.{i}.weight"] = torch.randn(v, c_in, 3, 3) * (2 / (9 * c_in)) ** 0.5
            backbone[f"features.{i}.bias"] = torch.randn(v) * 0.01
            c_in, i = v, i + 2
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(CHANNELS[net])}
    torch.save(backbone, os.path.join(folder, "backbone.pth"))
    torch.save(lins, os.path.join(folder, "lin.pth"))
    return {"net": net, "backbone_path": os.path.join(folder, "backbone.pth"), "lin_path": os.path.join(folder, "lin.pth")}
