import os

import numpy as np
import pytest
import torch

from hdm.data import PairedFolder, build_dataset
from hdm.data.demo import make_demo, smooth_depth, synthesize_haze, synthesize_lowlight, synthesize_rain
from hdm.image_io import read_image, write_image


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
    hazy, extras, params = synthesize_haze(clean, rng)
    t = extras["trans"]
    a = np.array(params["airlight"], dtype=np.float32)
    np.testing.assert_allclose(hazy, np.clip(clean * t[..., None] + a * (1 - t[..., None]), 0, 1), atol=1e-4)  # float32 t
    assert 0.6 <= params["beta"] <= 1.4 and 0.05 < t.min() < t.max() < 0.9
    d = smooth_depth(32, 48, np.random.default_rng(0))
    assert d.min() == pytest.approx(0.2) and d.max() == pytest.approx(1.6)


def test_demo_data_is_idempotent(tmp_path):
    root = str(tmp_path / "haze")
    make_demo("haze", root, samples_per_photo=1)
    ds = PairedFolder(root + "/train/hazy", root + "/train/clear")
    val = PairedFolder(root + "/val/hazy", root + "/val/clear")
    assert len(ds) == 3 and len(val) == 1
    before = (tmp_path / "haze" / "val" / "hazy" / "chelsea_0.png").stat().st_mtime_ns
    make_demo("haze", root, samples_per_photo=1)
    assert (tmp_path / "haze" / "val" / "hazy" / "chelsea_0.png").stat().st_mtime_ns == before


def make_reside(root, ids=("1", "2"), per=3, trans=True, gt="clear", ext=".png"):
    rng = np.random.default_rng(0)
    for i in ids:
        write_image(root / gt / f"{i}.png", rng.random((16, 20, 3)))
        for k in range(1, per + 1):
            write_image(root / "hazy" / f"{i}_{k}_0.{80 + k}{ext}", rng.random((16, 20, 3)))
            if trans:
                write_image(root / "trans" / f"{i}_{k}.png", rng.random((16, 20)))


def test_reside_its_pairs_by_id_and_returns_trans(tmp_path):
    from hdm.data import RESIDE
    make_reside(tmp_path, ids=("10", "2"))
    ds = RESIDE(str(tmp_path), trans=True, crop=8, augment=True)
    assert len(ds) == 6
    for i in range(6):
        s = ds[i]
        hazy_id = os.path.basename(s["lq_path"]).split("_")[0]
        assert os.path.basename(s["gt_path"]) == f"{hazy_id}.png"
        assert s["trans"].shape == (1, 8, 8) and s["lq"].shape == (3, 8, 8)


def test_reside_sots_gt_folder_and_errors(tmp_path):
    from hdm.data import RESIDE
    make_reside(tmp_path / "sots", trans=False, gt="gt", ext=".jpg")
    assert len(RESIDE(str(tmp_path / "sots"))) == 6
    with pytest.raises(FileNotFoundError, match="trans"):
        RESIDE(str(tmp_path / "sots"), trans=True)
    with pytest.raises(FileNotFoundError, match="expected <root>/hazy"):
        RESIDE(str(tmp_path / "nothing"))
    os.remove(tmp_path / "sots" / "gt" / "2.png")
    with pytest.raises(ValueError, match="3 of 6 hazy images have no clear image"):
        RESIDE(str(tmp_path / "sots"))


def test_paired_folder_trans_follows_crop_and_augment(tmp_path):
    img = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    for sub in ("lq", "gt"):
        write_image(tmp_path / sub / "p.png", img)
    write_image(tmp_path / "trans" / "p.png", img[..., 0])
    ds = PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"), trans_dir=str(tmp_path / "trans"),
                      crop=16, augment=True)
    for _ in range(10):
        s = ds[0]
        assert torch.allclose(s["trans"][0], s["lq"][0], atol=1 / 255)


def test_rain_synthesis_adds_oriented_streaks():
    clean = np.full((96, 96, 3), 0.3, np.float32)
    rainy, _, params = synthesize_rain(clean, np.random.default_rng(0))
    streaks = rainy[..., 0] - 0.3
    assert (rainy >= clean - 1e-6).all() and streaks.max() == pytest.approx(params["peak"], abs=0.02)
    assert 0.001 < (streaks > 0.05).mean() < 0.5
    # streaks are longer along their direction than across it: compare autocorrelation along both axes
    s = streaks - streaks.mean()
    along = (s[1:, :] * s[:-1, :]).mean() if abs(params["angle"]) < 45 else (s[:, 1:] * s[:, :-1]).mean()
    across = (s[:, 1:] * s[:, :-1]).mean() if abs(params["angle"]) < 45 else (s[1:, :] * s[:-1, :]).mean()
    assert along > across


def test_lowlight_synthesis_is_gamma_darkening_plus_noise():
    clean = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    dark, _, params = synthesize_lowlight(clean, np.random.default_rng(2))
    assert 2 <= params["gamma"] <= 4 and params["sigma"] <= 0.02
    residual = dark - np.clip(clean ** params["gamma"], 0, 1)
    assert abs(residual.std() - params["sigma"]) < 0.005 and abs(residual.mean()) < 0.002
    assert dark.mean() < clean.mean()


@pytest.mark.parametrize("task,reader", [("rain", "Rain"), ("lowlight", "LOL")])
def test_demo_tasks_load_with_the_public_readers(tmp_path, task, reader):
    from hdm.data import build_dataset
    root = make_demo(task, str(tmp_path / task), samples_per_photo=1)
    if task == "rain":
        train = build_dataset({"type": "Rain", "root": f"{root}/train"})
        val = build_dataset({"type": "Rain", "root": f"{root}/val"})
    else:
        train = build_dataset({"type": "LOL", "root": root})
        val = build_dataset({"type": "LOL", "root": root, "split": "test"})
    assert len(train) == 3 and len(val) == 1
    assert val[0]["lq"].shape == val[0]["gt"].shape == (3, 300, 451)
