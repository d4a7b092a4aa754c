"""Every dataset layout as a tiny fake tree: pairing by name, counts, splits, and clear errors."""
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hdm.data import LOL, RESIDE, ImageFolder, NumberedHaze, Rain, SideBySide, build_dataset
from hdm.image_io import write_image
from tests.helpers import assert_paired, marked_image

RNG = np.random.default_rng(0)


def img(path, value=None, size=(12, 16)):
    marked_image(path, value, size)


@pytest.mark.parametrize("layout", ["one_folder", "two_folders", "two_folders_plain_names"])
def test_numbered_haze_layouts_and_split(tmp_path, layout):
    for n in range(1, 56):
        if layout == "one_folder":
            img(tmp_path / f"{n:02d}_hazy.png", n), img(tmp_path / f"{n:02d}_GT.png", n)
        elif layout == "two_folders":
            img(tmp_path / "hazy" / f"{n:02d}_hazy.png", n), img(tmp_path / "GT" / f"{n:02d}_GT.png", n)
        else:
            img(tmp_path / "hazy" / f"{n:02d}.png", n), img(tmp_path / "gt" / f"{n:02d}.png", n)
    train, test = NumberedHaze(str(tmp_path)), NumberedHaze(str(tmp_path), split="test")
    assert len(train) == 50 and len(test) == 5
    assert os.path.basename(test[0]["lq_path"]).startswith("51")
    assert_paired(test)
    assert len(NumberedHaze(str(tmp_path), split="train", train_range=[1, 45])) == 45


def test_numbered_haze_errors(tmp_path):
    img(tmp_path / "01_hazy.png", 1)
    with pytest.raises(ValueError, match="inputs without target: \\[1\\]"):
        NumberedHaze(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="expected"):
        NumberedHaze(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="split"):
        NumberedHaze(str(tmp_path), split="val")


@pytest.mark.parametrize("layout", ["jorder", "one_folder", "rainy", "rainy_norain_dir"])
def test_rain_layouts_pair_by_number(tmp_path, layout):
    for n in (1, 2, 10, 100):
        if layout == "jorder":
            img(tmp_path / "rain" / "X2" / f"norain-{n}x2.png", n), img(tmp_path / "norain" / f"norain-{n}.png", n)
        elif layout == "one_folder":
            img(tmp_path / f"rain-{n}.png", n), img(tmp_path / f"norain-{n}.png", n)
        elif layout == "rainy":
            img(tmp_path / "rainy" / f"rain-{n:03d}.png", n), img(tmp_path / f"norain-{n:03d}.png", n)
        else:
            img(tmp_path / "rainy" / f"rain-{n}.png", n), img(tmp_path / "norain" / f"norain-{n}.png", n)
    ds = Rain(str(tmp_path), crop=8, augment=True)
    assert len(ds) == 4
    # sorted by number, not by name ("10" < "2" as text)
    assert [os.path.basename(p[1]) for p in ds.samples][1].startswith(("norain-2", "norain-002"))
    assert_paired(Rain(str(tmp_path)))


def test_rain_missing_pair_is_named(tmp_path):
    img(tmp_path / "rain-1.png", 1), img(tmp_path / "norain-1.png", 1), img(tmp_path / "rain-2.png", 2)
    with pytest.raises(ValueError, match="inputs without target: \\[2\\]"):
        Rain(str(tmp_path))


def test_side_by_side_left_is_rainy(tmp_path):
    a = np.zeros((8, 20, 3), np.float32)
    a[:, :10] = 0.2
    a[:, 10:] = 0.8
    write_image(tmp_path / "1.jpg", a)
    s = SideBySide(str(tmp_path))[0]
    assert s["lq"].shape == s["gt"].shape == (3, 8, 10)
    assert abs(s["lq"].mean().item() - 0.2) < 0.02 and abs(s["gt"].mean().item() - 0.8) < 0.02
    flipped = SideBySide(str(tmp_path), lq_side="right")[0]
    assert torch.equal(flipped["lq"], s["gt"])
    write_image(tmp_path / "odd.png", np.zeros((8, 21, 3)))
    with pytest.raises(ValueError, match="odd"):
        SideBySide(str(tmp_path))[1]


def test_lol_splits_and_direct_folder(tmp_path):
    for split, count in (("our485", 4), ("eval15", 2)):
        for n in range(count):
            img(tmp_path / split / "low" / f"{n + 1}.png", n), img(tmp_path / split / "high" / f"{n + 1}.png", n)
    assert len(LOL(str(tmp_path))) == 4 and len(LOL(str(tmp_path), split="test")) == 2
    assert len(LOL(str(tmp_path / "eval15"))) == 2
    assert_paired(LOL(str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="our485"):
        LOL(str(tmp_path / "eval15" / "low"))


def test_image_folder_is_unpaired(tmp_path):
    img(tmp_path / "b.jpg"), img(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    ds = ImageFolder(str(tmp_path))
    assert [os.path.basename(p) for p in ds.files] == ["a.png", "b.jpg"]
    assert set(ds[0]) == {"lq", "lq_path"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found none"):
        ImageFolder(str(tmp_path / "empty"))


def test_every_dataset_type_is_in_the_table():
    assert {"PairedFolder", "RESIDE", "NumberedHaze", "Rain", "SideBySide", "LOL", "ImageFolder"} <= set(
        __import__("hdm.data", fromlist=["DATASETS"]).DATASETS)
    with pytest.raises(KeyError, match="valid"):
        build_dataset({"type": "Rain100"})


# ----------------------------------------------------------------------------- DehazeFormer's RESIDE, MSPFN's rain sets

# DehazeFormer's release (IDKiro/DehazeFormer README and datasets/loader.py): <set>/{train,test}/{hazy,GT}/<name>,
# one GT copy per hazy image under the same name; the set folder and the split name the benchmark
DEHAZEFORMER = [("RESIDE-IN/train", "ITS", False), ("RESIDE-IN/test", "SOTS-indoor", True),
                ("RESIDE-OUT/train", "OTS", False), ("RESIDE-OUT/test", "SOTS-outdoor", True),
                ("RESIDE-6K/train", "RESIDE-6K-train", False), ("RESIDE-6K/test", "RESIDE-6K-test", True)]


@pytest.mark.parametrize("where,benchmark,test_set", DEHAZEFORMER)
def test_dehazeformer_release_pairs_by_name_and_is_recognised(tmp_path, where, benchmark, test_set):
    root = tmp_path / "data" / where
    for n, (scene, k) in enumerate([(1400, 1), (1400, 2), (1401, 1), (1402, 3)]):
        img(root / "hazy" / f"{scene}_{k}.png", n), img(root / "GT" / f"{scene}_{k}.png", n)
    ds = RESIDE(str(root))
    assert (ds.benchmark, ds.is_test_set, ds.found, len(ds)) == (benchmark, test_set, (4, 4), 4)
    assert ds.version == "hazy/ with GT/ of the same names"
    assert all(os.path.basename(lq) == os.path.basename(gt) for lq, gt, _ in ds.samples)
    assert_paired(ds)
    assert ds.scenes == ["1400", "1400", "1401", "1402"]


def test_dehazeformer_release_missing_gt_is_named(tmp_path):
    root = tmp_path / "RESIDE-IN" / "test"
    for name in ("1400_1", "1400_2", "1401_1"):
        img(root / "hazy" / f"{name}.png")
    for name in ("1400_1", "1401_1"):
        img(root / "GT" / f"{name}.png")
    with pytest.raises(ValueError, match=r"1 of 3 hazy images have no clear image of the same name \(e.g. \['1400_2'\]\)"):
        RESIDE(str(root))


NAMES = st.lists(st.tuples(st.integers(1, 60), st.integers(1, 10)), min_size=2, max_size=25, unique=True)


@settings(max_examples=25, deadline=None, database=None)
@given(names=NAMES, same_names=st.booleans(), holdout=st.integers(1, 3))
def test_reside_pairing_and_holdout_follow_the_scene_id(tmp_path_factory, names, same_names, holdout):
    """Either layout: each hazy <id>_<k> pairs with GT/<id>_<k> (DehazeFormer's) or gt/<id> (RESIDE's), its
    scene is <id>, and a holdout takes whole scenes. Construction lists names only: empty files suffice."""
    root = tmp_path_factory.mktemp("reside")
    (root / "hazy").mkdir(), (root / "GT").mkdir()
    for scene, k in names:
        (root / "hazy" / f"{scene}_{k}.png").touch()
        (root / "GT" / (f"{scene}_{k}.png" if same_names else f"{scene}.png")).touch()
    ids = {str(scene) for scene, _ in names}
    ds = RESIDE(str(root), benchmark=None)
    for (lq, gt, _), scene in zip(ds.samples, ds.scenes):
        stem = os.path.splitext(os.path.basename(lq))[0]
        assert scene == stem.split("_")[0]
        assert os.path.basename(gt) == (os.path.basename(lq) if same_names else f"{scene}.png")
    assert len(ds) == len(names) and ds.found == (len(names), len(names) if same_names else len(ids))
    if holdout < len(ids):
        rest = RESIDE(str(root), holdout=holdout, benchmark=None)
        held = RESIDE(str(root), holdout=holdout, take="holdout", benchmark=None)
        assert len(set(held.scenes)) == holdout and not set(held.scenes) & set(rest.scenes)
        assert sorted(rest.samples + held.samples) == sorted(ds.samples)


# MSPFN's test sets (kuijiang94/MSPFN, model/test/test_data/R100H/{inputcrop,cleancrop}/<n>.png; its README names
# R100H, R100L, TEST100, TEST1200, TEST2800): shipped for testing only, so a test set whatever the path says
@pytest.mark.parametrize("folder,benchmark", [("R100H", "Rain100H-test"), ("R100L", "Rain100L-test"),
                                              ("TEST100", None)])
def test_mspfn_test_folders(tmp_path, folder, benchmark):
    root = tmp_path / "test_data" / folder
    for n in (1, 2, 10, 100):
        img(root / "inputcrop" / f"{n}.png", n), img(root / "cleancrop" / f"{n}.png", n)
    ds = Rain(str(root))
    assert (len(ds), ds.benchmark, ds.is_test_set, ds.split) == (4, benchmark, True, "test")
    assert ds.version == "inputcrop/ with cleancrop/"
    assert [os.path.basename(gt) for _, gt, _ in ds.samples] == ["1.png", "2.png", "10.png", "100.png"]
    assert_paired(ds)
