import numpy as np
import pytest
import torch

from hdm.data import PairedFolder, build_dataset
from hdm.data.demo import make_haze_demo, smooth_depth, synthesize_haze
from hdm.data.io import read_image, write_image


def make_pairs(root, names, size=(20, 24), gt_names=None):
    rng = np.random.default_rng(0)
    for name in names:
        write_image(root / "lq" / f"{name}.png", rng.random((*size, 3)))
    for name in gt_names or names:
        write_image(root / "gt" / f"{name}.png", rng.random((*size, 3)))


def test_pairs_by_name_not_order(tmp_path):
    make_pairs(tmp_path, ["b", "a", "c"])
    ds = PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))
    assert len(ds) == 3
    for i in range(3):
        s = ds[i]
        assert s["lq_path"].endswith(s["gt_path"][-5:])
        assert s["lq"].shape == s["gt"].shape == (3, 20, 24) and s["lq"].dtype == torch.float32


def test_unpaired_and_missing_folders_are_clear_errors(tmp_path):
    make_pairs(tmp_path, ["a", "b"], gt_names=["a", "x"])
    with pytest.raises(ValueError, match="unpaired"):
        PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        PairedFolder(str(tmp_path / "nope"), str(tmp_path / "gt"))
    with pytest.raises(KeyError, match="PairedFolder"):
        build_dataset({"type": "Folder"})


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(OSError, match="bad.png"):
        read_image(str(tmp_path / "bad.png"))


def test_crop_and_augment_are_shared_by_the_pair(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.random((30, 40, 3)).astype(np.float32)
    for sub in ("lq", "gt"):
        write_image(tmp_path / sub / "p.png", img)
    ds = PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"), crop=16, augment=True)
    for _ in range(10):
        s = ds[0]
        assert s["lq"].shape == (3, 16, 16) and torch.equal(s["lq"], s["gt"])
    with pytest.raises(ValueError, match="smaller than the crop"):
        PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"), crop=64)[0]


def test_haze_synthesis_follows_the_scattering_model():
    rng = np.random.default_rng(3)
    clean = np.random.default_rng(4).random((32, 48, 3)).astype(np.float32)
    hazy, t, params = synthesize_haze(clean, rng)
    a = np.array(params["airlight"], dtype=np.float32)
    np.testing.assert_allclose(hazy, np.clip(clean * t[..., None] + a * (1 - t[..., None]), 0, 1), atol=1e-4)  # t stored as float32
    assert 0.6 <= params["beta"] <= 1.4 and 0.05 < t.min() < t.max() < 0.9
    d = smooth_depth(32, 48, np.random.default_rng(0))
    assert d.min() == pytest.approx(0.2) and d.max() == pytest.approx(1.6)


def test_demo_data_is_idempotent(tmp_path):
    root = str(tmp_path / "haze")
    make_haze_demo(root, samples_per_photo=1)
    ds = PairedFolder(root + "/train/hazy", root + "/train/clear")
    val = PairedFolder(root + "/val/hazy", root + "/val/clear")
    assert len(ds) == 3 and len(val) == 1
    before = (tmp_path / "haze" / "val" / "hazy" / "chelsea_0.png").stat().st_mtime_ns
    make_haze_demo(root, samples_per_photo=1)
    assert (tmp_path / "haze" / "val" / "hazy" / "chelsea_0.png").stat().st_mtime_ns == before
