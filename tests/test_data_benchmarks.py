"""Every benchmark as its public download lays it out, with its quirks (SOTS-indoor's 640x480 ground
truth, OTS's nested parts, LOL-v2's names, the rain sets' X2 names), as small trees: counts, pairing,
the border crop, the check before work, held-out validation splits, and what test.py records."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hdm.cli import UsageError
from hdm.cli import evaluate as evaluate_cli
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli
from hdm.config import ConfigError, load_config, resolve
from hdm.data import LOL, RESIDE, ImageFolder, NumberedHaze, Rain, SideBySide, benchmarks
from hdm.data.prepare import DataError, prepare
from hdm.image_io import read_image, write_image
from tests.helpers import ROOT, assert_paired, load_script, marked_image, run_cli

RNG = np.random.default_rng(0)
SIZE = (46, 62)  # SOTS-indoor's 460x620 at 1/10; its gt 480x640 becomes 66x82 (a 10-pixel border)


def img(path, value, size=SIZE, border=0):
    marked_image(path, value, size, border)


# ----------------------------------------------------------------------------- the trees


def make_its(root, scenes=6, per_scene=3):
    for i in range(1, scenes + 1):
        img(root / "clear" / f"{i}.png", i)
        for k in range(1, per_scene + 1):
            img(root / "hazy" / f"{i}_{k}_0.{80 + k}.png", i)
            write_image(root / "trans" / f"{i}_{k}.png", np.full(SIZE, 0.5))
    return root


def make_ots(root, hazy_name="haze", scenes=(25, 26, 31, 40), parts=2):
    for n, i in enumerate(scenes):
        img(root / "clear" / f"{i:04d}.jpg", 0)
        for a in range(2):
            img(root / hazy_name / f"part{(n + a) % parts + 1}" / f"{i:04d}_0.{8 + a}_0.1.jpg", 0)
    return root


def make_sots_indoor(root, border=10, ids=(1400, 1401, 1402)):
    for i in ids:
        img(root / "gt" / f"{i}.png", i % 256, border=border)
        for k in range(1, 4):
            img(root / "hazy" / f"{i}_{k}.png", i % 256)
    return root


def make_sots_outdoor(root, ids=(1, 2, 3)):
    for i in ids:
        img(root / "gt" / f"{i:04d}.png", 0)
        img(root / "hazy" / f"{i:04d}_0.8_0.2.jpg", 0)
    return root


def make_dehazeformer(root, names=("1400_1", "1400_2", "1401_1")):
    for n, name in enumerate(names):
        img(root / "hazy" / f"{name}.png", n), img(root / "GT" / f"{name}.png", n)
    return root


def make_numbered(root, one_folder=True, count=12):
    for n in range(1, count + 1):
        if one_folder:
            img(root / f"{n:02d}_hazy.png", n), img(root / f"{n:02d}_GT.png", n)
        else:
            img(root / "hazy" / f"{n:02d}_hazy.png", n), img(root / "GT" / f"{n:02d}_GT.png", n)
    return root


def make_rain_x2(root, numbers=range(1, 9)):
    for n in numbers:
        img(root / "rain" / "X2" / f"norain-{n}x2.png", n), img(root / "norain" / f"norain-{n}.png", n)
    return root


def make_rain_input_target(root, numbers=range(1, 9)):
    for n in numbers:
        img(root / "input" / f"{n}.png", n), img(root / "target" / f"{n}.png", n)
    return root


def make_rain_folders(root, rain_dir, gt_dir, rain_name="rain-{}.png", gt_name="norain-{}.png", numbers=range(1, 5)):
    """Rain pairs in any of the layouts: rain_dir / gt_dir relative to root ('' for root itself)."""
    for n in numbers:
        img(root / rain_dir / rain_name.format(n), n), img(root / gt_dir / gt_name.format(n), n)
    return root


def make_did(root, folders=("Rain_Heavy", "Rain_Medium", "Rain_Light"), numbers=range(1, 5)):
    for folder in folders:
        for n in numbers:
            write_image(root / folder / "train2018new" / f"{n}.jpg", RNG.random((SIZE[0], 2 * SIZE[1], 3)))
    return [str(root / f / "train2018new") for f in folders]


def make_lol(root, train=8, test=3):
    for split, count in (("our485", train), ("eval15", test)):
        for n in range(1, count + 1):
            img(root / split / "low" / f"{n}.png", n), img(root / split / "high" / f"{n}.png", n)
    return root


def make_lol_v2_real(root, train=8, test=3):
    for split, count in (("Train", train), ("Test", test)):
        for n in range(1, count + 1):
            img(root / split / "Low" / f"low{n:05d}.png", n), img(root / split / "Normal" / f"normal{n:05d}.png", n)
    return root


def make_lol_v2_synthetic(root, train=8, test=3):
    for split, count in (("Train", train), ("Test", test)):
        for n in range(1, count + 1):
            name = f"r{n:03x}da6f4t.png"
            img(root / split / "Low" / name, n), img(root / split / "Normal" / name, n)
    return root


# ----------------------------------------------------------------------------- readers


def test_its_counts_pairing_and_recognition(tmp_path):
    ds = RESIDE(str(make_its(tmp_path / "RESIDE" / "ITS")), trans=True)
    assert len(ds) == 18 and ds.found == (18, 6) and ds.benchmark == "ITS" and not ds.is_test_set
    assert_paired(ds)
    assert ds[0]["trans"].shape == (1, *SIZE)


@pytest.mark.parametrize("hazy_name", ["haze", "hazy"])
def test_ots_nested_parts_and_jpeg_clear(tmp_path, hazy_name):
    ds = RESIDE(str(make_ots(tmp_path / "OTS_BETA", hazy_name)))
    assert len(ds) == 8 and ds.found == (8, 4) and ds.benchmark == "OTS" and "part folders" in ds.version
    assert {os.path.basename(os.path.dirname(lq)) for lq, _, _ in ds.samples} == {"part1", "part2"}
    assert all(os.path.basename(gt) == os.path.basename(lq)[:4] + ".jpg" for lq, gt, _ in ds.samples)


def test_ots_same_name_in_two_parts_is_an_error(tmp_path):
    root = make_ots(tmp_path / "OTS")
    img(root / "haze" / "part2" / "0025_0.8_0.1.jpg", 0)
    with pytest.raises(ValueError, match="two images with the name '0025_0.8_0.1'"):
        RESIDE(str(root))


def test_sots_indoor_640x480_gt_is_centre_cropped(tmp_path):
    root = make_sots_indoor(tmp_path / "SOTS" / "indoor")
    ds = RESIDE(str(root))
    assert ds.benchmark == "SOTS-indoor" and ds.is_test_set and len(ds) == 9 and ds.found == (9, 3)
    report = ds.check()
    assert report.border_pairs == 9 and report.border == [10] and not report.problems
    sample = ds[0]
    assert sample["gt"].shape == sample["lq"].shape == (3, *SIZE)
    by_hand = read_image(sample["gt_path"])[10:-10, 10:-10]
    assert np.array_equal(sample["gt"].permute(1, 2, 0).numpy(), by_hand)
    assert_paired(ds)
    with pytest.raises(ValueError, match=r"1400_1.png \(46x62\) and its target .*1400.png \(66x82\) differ in size"):
        RESIDE(str(root), crop_gt_border=False).check()


def test_other_size_differences_are_errors_naming_both_files(tmp_path):
    root = make_sots_indoor(tmp_path / "SOTS" / "indoor", border=0)
    write_image(root / "gt" / "1401.png", RNG.random((SIZE[0] + 20, SIZE[1] + 10, 3)))  # unequal border
    ds = RESIDE(str(root))
    with pytest.raises(ValueError, match=r"hazy/1401_1.png \(46x62\) and its target .*gt/1401.png \(66x72\)"):
        ds.check()
    report = ds.check(first_only=False)
    assert len(report.problems) == 3 and report.pairs == 9
    with pytest.raises(ValueError, match="differ in size"):
        ds[3]  # reading the pair fails the same way


def test_sots_outdoor(tmp_path):
    ds = RESIDE(str(make_sots_outdoor(tmp_path / "SOTS" / "outdoor")))
    assert ds.benchmark == "SOTS-outdoor" and ds.is_test_set and len(ds) == 3 and ds.found == (3, 3)


@pytest.mark.parametrize("name,one_folder", [("NH-HAZE", True), ("Dense-Haze", False)])
def test_nh_and_dense_haze(tmp_path, name, one_folder):
    root = make_numbered(tmp_path / name, one_folder, count=55)
    train, test = NumberedHaze(str(root)), NumberedHaze(str(root), split="test")
    assert train.benchmark == test.benchmark == name and train.found == (55, 55)
    assert len(train) == 50 and not train.is_test_set and len(test) == 5 and test.is_test_set
    assert NumberedHaze(str(root), split="all").is_test_set  # it includes 51-55
    assert_paired(test)


def test_rain_x2_and_input_target_layouts(tmp_path):
    ds = Rain(str(make_rain_x2(tmp_path / "Rain200H" / "train")))
    assert len(ds) == 8 and ds.benchmark == "Rain200H-train" and not ds.is_test_set and ds.version == "rain/X2/ with norain/"
    assert_paired(ds)
    test = Rain(str(make_rain_input_target(tmp_path / "Rain100L" / "test")))
    assert len(test) == 8 and test.benchmark == "Rain100L-test" and test.is_test_set
    assert_paired(test)


def test_did_groups_a_number_across_density_folders(tmp_path):
    roots = make_did(tmp_path / "DID-data" / "DID-MDN-training")
    train = SideBySide(roots, holdout=1)
    val = SideBySide(roots, holdout=1, take="holdout")
    assert len(val) == 3 and len({os.path.basename(p) for p, _, _ in val.samples}) == 1  # one number, 3 densities
    assert len(train) == 9 and not {s for s in val.scenes} & set(train.scenes)
    assert train.benchmark == "DID-train" and train.found == (12, 12)


def test_lol_v1_and_v2(tmp_path):
    v1 = LOL(str(make_lol(tmp_path / "LOL")), split="test")
    assert v1.benchmark == "LOL-test" and v1.is_test_set and len(v1) == 3
    real = make_lol_v2_real(tmp_path / "LOL-v2" / "Real_captured")
    train, test = LOL(str(real)), LOL(str(real), split="test")
    assert (len(train), len(test)) == (8, 3) and train.benchmark == "LOL-v2-real-train"
    assert test.benchmark == "LOL-v2-real-test" and test.is_test_set
    assert_paired(train)
    assert os.path.basename(train.samples[0][1]) == "normal00001.png"
    syn = LOL(str(make_lol_v2_synthetic(tmp_path / "LOL-v2" / "Synthetic")))
    assert len(syn) == 8 and syn.benchmark == "LOL-v2-synthetic-train"
    assert_paired(syn)
    split_folder = LOL(str(real / "Test"))  # root = one split folder: the split is read from the path
    assert split_folder.is_test_set and len(split_folder) == 3
    with pytest.raises(ValueError, match="holds both LOL-v2 sets"):
        LOL(str(tmp_path / "LOL-v2"))


def test_unpaired_folders(tmp_path):
    for n in range(3):
        img(tmp_path / "DICM" / f"{n:02d}.jpg", n)
    ds = ImageFolder(str(tmp_path / "DICM"))
    assert len(ds) == 3 and ds.benchmark == "DICM" and ds.found == (3, 0)
    assert not ds.check().problems


def test_counts_against_the_distributed_sizes():
    its = benchmarks.BENCHMARKS["ITS"]
    assert (its.inputs, its.targets, its.test_set) == (13990, 1399, False)
    differs, line = benchmarks.count_line("data.train", "ITS", (13000, 1399))
    assert differs and "found 13,000 inputs / 1,399 targets, but ITS is distributed with 13,990 / 1,399" in line
    assert not benchmarks.count_line("data.test", "SOTS-indoor", (500, 50))[0]
    for name, b in benchmarks.BENCHMARKS.items():  # every entry names a reader and a source
        assert b.reader in ("RESIDE", "NumberedHaze", "Rain", "SideBySide", "LOL", "ImageFolder") and b.source, name


def test_dehazeformer_copies_and_reside_6k_in_the_table():
    b = benchmarks.BENCHMARKS
    # DehazeFormer's release (Song et al., TIP 2023; IDKiro/DehazeFormer's data links): one GT copy per hazy image,
    # so inputs = targets = the pairs: ITS's 13,990, SOTS's 500; RESIDE-OUT/train as OTS's 313,950 (uncertain:
    # its issue #26 says images smaller than the 256x256 patch were left out, how many is not stated)
    copies = {name: [(c.release, c.inputs, c.targets) for c in b[name].copies] for name in b if b[name].copies}
    assert copies == {"ITS": [("DehazeFormer's RESIDE-IN/train", 13990, 13990)],
                      "OTS": [("DehazeFormer's RESIDE-OUT/train", 313950, 313950)],
                      "SOTS-indoor": [("DehazeFormer's RESIDE-IN/test", 500, 500)]}
    assert "uncertain" in b["OTS"].copies[0].note and "issue #26" in b["OTS"].copies[0].note
    # RESIDE-6K: Shao et al., CVPR 2020 (DehazeFormer's issue #21 names it the source): 3,000 ITS + 3,000 OTS pairs
    # for training, 1,000 SOTS pairs for testing
    assert [(b[n].inputs, b[n].targets, b[n].test_set) for n in ("RESIDE-6K-train", "RESIDE-6K-test")] == [
        (6000, 6000, False), (1000, 1000, True)]
    assert all("Shao et al." in b[n].source for n in ("RESIDE-6K-train", "RESIDE-6K-test"))


@pytest.mark.parametrize("benchmark,found,match", [
    ("SOTS-indoor", (500, 50), "as distributed (SOTS-indoor: 500 / 50; Li et al."),
    ("SOTS-indoor", (500, 500), "as distributed (SOTS-indoor as DehazeFormer's RESIDE-IN/test: 500 / 500; Song et al."),
    ("ITS", (13990, 13990), "as distributed (ITS as DehazeFormer's RESIDE-IN/train: 13,990 / 13,990"),
    ("RESIDE-6K-test", (1000, 1000), "as distributed (RESIDE-6K-test: 1,000 / 1,000; Shao et al.")])
def test_count_line_accepts_the_set_and_each_of_its_copies(benchmark, found, match):
    differs, line = benchmarks.count_line("data.test", benchmark, found)
    assert not differs and match in line


def test_count_line_names_every_distribution_when_none_matches():
    differs, line = benchmarks.count_line("data.test", "SOTS-indoor", (5, 5))
    assert differs and line.startswith("data.test: found 5 inputs / 5 targets, but SOTS-indoor is distributed with "
                                       "500 / 50 (Li et al., RESIDE, TIP 2019) or 500 / 500 (SOTS-indoor as "
                                       "DehazeFormer's RESIDE-IN/test; Song et al.")


# the folder names as distributed -> the benchmark the path words name (default_split: the reader's, for layouts
# shipped for one split only)
RECOGNISED = [
    ("RESIDE", "data/RESIDE-IN/test", None, "SOTS-indoor"), ("RESIDE", "data/RESIDE-IN/train", None, "ITS"),
    ("RESIDE", "data/RESIDE-OUT/test", None, "SOTS-outdoor"), ("RESIDE", "data/RESIDE-OUT/train", None, "OTS"),
    ("RESIDE", "data/RESIDE-6K/train", None, "RESIDE-6K-train"), ("RESIDE", "data/RESIDE-6K/test", None, "RESIDE-6K-test"),
    ("RESIDE", "reside-indoor/test", None, "SOTS-indoor"), ("RESIDE", "data/RESIDE-IN", None, None),
    ("RESIDE", "SOTS/indoor", None, "SOTS-indoor"), ("RESIDE", "RESIDE/ITS", None, "ITS"),
    ("Rain", "test_data/R100H", "test", "Rain100H-test"), ("Rain", "test_data/R100L", "test", "Rain100L-test"),
    ("Rain", "R100H", None, None), ("Rain", "Rain200H/train", "test", "Rain200H-train"),
]


@pytest.mark.parametrize("reader,where,default_split,benchmark", RECOGNISED)
def test_recognition_from_the_folder_names(reader, where, default_split, benchmark):
    assert benchmarks.guess(reader, os.path.join("/srv", where), default_split) == benchmark


WORD = st.text("abcdefghjkmpqruvwxyz", min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, database=None)
@given(prefix=st.lists(WORD, max_size=4), where=st.sampled_from([r for r in RECOGNISED if r[3]]))
def test_the_nearest_folders_decide(prefix, where):
    """Whatever folders lie above a set folder as distributed, it is recognised the same."""
    reader, rel, default_split, benchmark = where
    assert benchmarks.guess(reader, os.path.join("/", *prefix, rel), default_split) == benchmark


# ----------------------------------------------------------------------------- held-out validation


def test_holdout_has_no_scene_in_common_with_training(tmp_path):
    root = make_its(tmp_path / "ITS", scenes=12)
    train, val = RESIDE(str(root), holdout=3), RESIDE(str(root), holdout=3, take="holdout")
    assert len(val) == 9 and len(train) == 27
    assert not set(train.scenes) & set(val.scenes) and set(train.scenes) | set(val.scenes) == set(map(str, range(1, 13)))
    assert not val.is_test_set
    # the same draw every time, and not simply the first or last ids
    assert RESIDE(str(root), holdout=3, take="holdout").scenes == val.scenes


def test_overlapping_validation_is_refused_before_work(tmp_path):
    root = str(make_its(tmp_path / "ITS", scenes=12))
    cfg = resolve({"data": {"train": {"type": "RESIDE", "root": root, "holdout": 2},
                            "val": {"type": "RESIDE", "root": root, "holdout": 3, "take": "holdout"}}})
    with pytest.raises(DataError, match="data.val shares 1 images with data.train"):
        prepare(cfg, ("train", "val"))
    # a smaller validation holdout draws a subset of a larger training one (the same permutation): allowed
    cfg["data"]["train"]["holdout"] = 4
    sets, _ = prepare(cfg, ("train", "val"))
    assert len(sets["val"]) == 9 and len(sets["train"]) == 24


# ----------------------------------------------------------------------------- training and testing


TINY = ["model.dim=8", "model.groups=1", "model.blocks_per_group=1", "losses=[{type: L1}]", "train.iterations=2",
        "train.batch_size=2", "train.num_workers=0", "train.val_every=2", "train.save_every=2", "train.log_every=1",
        "data.train.crop=32"]


def _layout_cases(tmp):
    """(paper config, overrides) of each layout: trained and tested with dotted overrides only."""
    its, sots = make_its(tmp / "ITS"), make_sots_indoor(tmp / "SOTS" / "indoor")
    ots, sots_out = make_ots(tmp / "OTS", scenes=(25, 26, 31, 40, 41, 42)), make_sots_outdoor(tmp / "SOTS" / "outdoor")
    nh, dense = make_numbered(tmp / "NH-HAZE", True, 55), make_numbered(tmp / "Dense-Haze", False, 55)
    r100 = (make_rain_x2(tmp / "Rain100L" / "train"), make_rain_x2(tmp / "Rain100L" / "test", range(1, 4)))
    r200 = (make_rain_input_target(tmp / "Rain200H" / "train"), make_rain_input_target(tmp / "Rain200H" / "test"))
    did_train, did_test = make_did(tmp / "DID" / "train"), make_did(tmp / "DID" / "test", ("all",))
    lol, real, syn = make_lol(tmp / "LOL"), make_lol_v2_real(tmp / "v2" / "Real_captured"), \
        make_lol_v2_synthetic(tmp / "v2" / "Synthetic")
    hold = ["data.train.holdout=1", "data.val.holdout=1"]
    return {
        "its_sots_indoor_640": ("dehaze/hdm_its_paper", [f"data.train.root={its}", f"data.val.root={its}",
                                                         f"data.test.root={sots}", *hold]),
        "ots_sots_outdoor": ("dehaze/hdm_its_paper", [f"data.train.root={ots}", "data.train.trans=false",
                                                      f"data.val.root={ots}", f"data.test.root={sots_out}", *hold]),
        "nh_haze": ("dehaze/hdm_nhhaze", [f"data.train.root={nh}", f"data.val.root={nh}", f"data.test.root={nh}"]),
        "dense_haze": ("dehaze/hdm_densehaze", [f"data.train.root={dense}", f"data.val.root={dense}",
                                                f"data.test.root={dense}"]),
        "rain100l_x2": ("derain/hdm_rain100l", [f"data.train.root={r100[0]}", f"data.val.root={r100[0]}",
                                                f"data.test.root={r100[1]}", *hold]),
        "rain200h_input_target": ("derain/hdm_rain200h", [f"data.train.root={r200[0]}", f"data.val.root={r200[0]}",
                                                          f"data.test.root={r200[1]}", *hold]),
        "did": ("derain/hdm_did", [f"data.train.root=[{', '.join(did_train)}]", f"data.val.root=[{', '.join(did_train)}]",
                                   f"data.test.root={did_test[0]}", *hold]),
        "lol": ("lowlight/hdm_lol", [f"data.train.root={lol}", f"data.val.root={lol}", f"data.test.root={lol}", *hold]),
        "lol_v2_real": ("lowlight/hdm_lol", [f"data.train.root={real}", f"data.val.root={real}",
                                             f"data.test.root={real}", *hold]),
        "lol_v2_synthetic": ("lowlight/hdm_lol", [f"data.train.root={syn}", f"data.val.root={syn}",
                                                  f"data.test.root={syn}", *hold]),
    }


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return _layout_cases(tmp_path_factory.mktemp("layouts"))


@pytest.mark.parametrize("case", ["its_sots_indoor_640", "ots_sots_outdoor", "nh_haze", "dense_haze", "rain100l_x2",
                                  "rain200h_input_target", "did", "lol", "lol_v2_real", "lol_v2_synthetic"])
def test_each_layout_trains_and_tests_through_its_paper_config(tmp_path, layouts, case, capsys):
    config, overrides = layouts[case]
    config = os.path.join(ROOT, "configs", config + ".yaml")
    common = [*TINY, *overrides, f"work_dir={tmp_path}", "name=run"]
    train_cli.main(["-c", config, *common])
    log = (tmp_path / "run" / "train.log").read_text()
    assert "data.val" in log and "best.pth" not in log  # validation on a held-out split: no test-set warning
    weights = tmp_path / "run" / "checkpoints" / "iter_2.pth"
    assert (tmp_path / "run" / "checkpoints" / "best.pth").is_file()
    mean = test_cli.main(["-c", config, *common, "--weights", str(weights)])
    assert np.isfinite(mean["psnr"])
    out = capsys.readouterr().out
    assert "scoring" in out and "iteration 2 (the final one), not selected on any score" in out


def test_sots_indoor_640_gt_scores_as_cropping_by_hand(tmp_path):
    """DCP on a SOTS-indoor copy with 640x480-style gt = on a copy whose gt was centre-cropped by hand."""
    bordered = make_sots_indoor(tmp_path / "a" / "SOTS" / "indoor")
    cropped = tmp_path / "b" / "SOTS" / "indoor"
    for path in sorted(bordered.rglob("*.png")):
        a = read_image(path)
        write_image(cropped / path.relative_to(bordered), a[10:-10, 10:-10] if path.parent.name == "gt" else a)
    test = test_cli
    config = os.path.join(ROOT, "configs", "baselines", "dcp_sots.yaml")
    means = [test.main(["-c", config, f"data.test.root={root}", "--out", str(tmp_path / f"res{i}")])
             for i, root in enumerate((bordered, cropped))]
    assert means[0]["psnr"] == means[1]["psnr"] and means[0]["ssim"] == means[1]["ssim"]
    meta = json.loads((tmp_path / "res0" / "meta.json").read_text())
    assert meta["test_set"]["benchmark"] == "SOTS-indoor" and meta["checkpoint"]["weights"] is None


def _write_cfg(tmp_path, data, **train):
    cfg = {"name": "run", "work_dir": str(tmp_path / "runs"),
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}, "data": data,
           "train": {"iterations": 2, "batch_size": 2, "val_every": 1, "save_every": 1, "log_every": 1, **train}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_one_mismatched_pair_stops_before_iteration_one(tmp_path):
    root = make_its(tmp_path / "ITS")
    write_image(root / "clear" / "4.png", RNG.random((SIZE[0] + 3, SIZE[1], 3)))
    cfg = _write_cfg(tmp_path, {"train": {"type": "RESIDE", "root": str(root), "crop": 32}})
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", cfg], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"{root / 'hazy' / '4_1_0.81.png'} (46x62) and its target {root / 'clear' / '4.png'} (49x62)" in lines[0]
    assert "layout: expected <root>/hazy/" in lines[0]
    assert not (tmp_path / "runs").exists()  # no run folder, no checkpoint


def test_validation_on_a_test_set_is_said_and_recorded(tmp_path, capsys):
    its, sots = make_its(tmp_path / "ITS"), make_sots_indoor(tmp_path / "SOTS" / "indoor")
    train = {"type": "RESIDE", "root": str(its), "crop": 32}
    sots_cfg = {"type": "RESIDE", "root": str(sots)}
    cfg = _write_cfg(tmp_path, {"train": train, "val": sots_cfg, "test": sots_cfg})
    train_cli.main(["-c", cfg])
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    log = (tmp_path / "runs" / "run" / "train.log").read_text()
    assert "data.val is a test set (SOTS-indoor)" in log and "best.pth is not kept" in log
    assert not (ckpts / "best.pth").exists()
    # declared: best.pth is kept, marked, and test.py warns when scoring it on the same set
    train_cli.main(["-c", cfg, "train.select_on_test=true", "name=declared"])
    best = tmp_path / "runs" / "declared" / "checkpoints" / "best.pth"
    assert torch.load(best, weights_only=True)["selection"]["on_test_set"]
    capsys.readouterr()
    test_cli.main(["-c", cfg, "--weights", str(best)])
    captured = capsys.readouterr()
    assert "warning: these weights were selected on the set being tested" in captured.err
    out_dir = tmp_path / "runs" / "declared" / "test" / "best_SOTS-indoor"
    meta = json.loads((out_dir / "meta.json").read_text())
    assert meta["checkpoint"]["selected_on_tested_set"] and "a test set" in meta["checkpoint"]["chosen"]
    assert meta["checkpoint"]["iteration"] in (1, 2) and meta["test_set"]["root"] == str(sots)
    # a second test of the same weights on the same set goes to a new folder: nothing is overwritten
    test_cli.main(["-c", cfg, "--weights", str(best)])
    assert (out_dir.parent / "best_SOTS-indoor_2" / "meta.json").is_file()
    assert json.loads((out_dir / "meta.json").read_text()) == meta


def test_test_py_needs_only_the_set_it_tests(tmp_path, capsys):
    sots = make_sots_indoor(tmp_path / "SOTS" / "indoor")
    config = os.path.join(ROOT, "configs", "dehaze", "hdm_its_paper.yaml")  # its ITS folder does not exist here
    weights = tmp_path / "w.pth"
    model_cfg = load_config(config, TINY)["model"]
    from hdm.models import build_model
    torch.save({"model": build_model(model_cfg).state_dict()}, weights)
    mean = test_cli.main(["-c", config, *TINY, f"data.test.root={sots}", "--weights", str(weights),
                                     "--out", str(tmp_path / "res")])
    assert np.isfinite(mean["psnr"]) and "not recorded" in capsys.readouterr().out


# ----------------------------------------------------------------------------- tools


def test_dataset_type_switched_by_override(tmp_path):
    config = os.path.join(ROOT, "configs", "dehaze", "hdm_its_paper.yaml")
    cfg = load_config(config, ["data.train.type=PairedFolder", "data.train.lq_dir=a", "data.train.gt_dir=b"])
    assert cfg["data"]["train"] == {"type": "PairedFolder", "crop": 240, "augment": True, "holdout": 50,
                                    "lq_dir": "a", "gt_dir": "b"}
    with pytest.raises(ConfigError, match="data.train: dataset PairedFolder needs lq_dir, gt_dir"):
        load_config(config, ["data.train.type=PairedFolder"])


def test_evaluate_pairs_rain_x2_names_by_number_and_crops_the_border(tmp_path):
    evaluate = evaluate_cli
    for n in (1, 2, 10):
        a = RNG.random((*SIZE, 3))
        write_image(tmp_path / "pred" / f"norain-{n}x2.png", a)
        write_image(tmp_path / "gt" / f"norain-{n}.png", np.pad(a, ((10, 10), (10, 10), (0, 0))))
    with pytest.raises(UsageError, match="3 of 3 images have no target"):
        evaluate.main([str(tmp_path / "pred"), str(tmp_path / "gt")])
    mean = evaluate.main([str(tmp_path / "pred"), str(tmp_path / "gt"), "--pairing", "number"])
    assert mean["psnr"] > 60  # the same pixels once the border is cropped
    with pytest.raises(UsageError, match="differ in size"):
        evaluate.main([str(tmp_path / "pred"), str(tmp_path / "gt"), "--pairing", "number", "--no-crop-gt-border"])


def test_check_dataset_examples_work_as_written(tmp_path, monkeypatch, capsys):
    """Every example line of scripts/check_dataset.py's docstring, run on small trees at those paths."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "datasets"
    make_its(d / "RESIDE" / "ITS"), make_sots_indoor(d / "RESIDE" / "SOTS" / "indoor")
    make_rain_x2(d / "Rain200H" / "train"), make_lol(d / "LOL"), make_lol_v2_real(d / "LOL-v2" / "Real_captured")
    check = load_script("scripts/check_dataset")
    examples = [line.split("check_dataset.py", 1)[1].split("#")[0].split()
                for line in check.__doc__.splitlines() if "python scripts/check_dataset.py" in line]
    assert len(examples) >= 5
    for argv in examples:
        assert check.main(argv) == 0, argv
    out = capsys.readouterr().out
    assert "| ITS | RESIDE | 13,990 | 1,399 | no |" in out
    assert "centre-cropped to the input size" in out and "0 problem(s)" in out


def make_side_by_side(root, numbers=range(1, 4)):
    for n in numbers:
        write_image(root / f"{n}.jpg", RNG.random((SIZE[0], 2 * SIZE[1], 3)))
    return root


def _every_layout(d):
    """{case: (folder, the reader check_dataset.py should choose, the benchmark it should recognise)}: a small tree
    of every layout datasets/README.md lists."""
    for n in range(3):
        img(d / "DICM" / f"{n:02d}.jpg", n), img(d / "photos" / f"p{n}.png", n)
        img(d / "mine" / "degraded" / f"{n}.png", n), img(d / "mine" / "clear" / f"{n}.png", n)
    return {
        "ITS": (make_its(d / "RESIDE" / "ITS", scenes=2), "RESIDE", "ITS"),
        "OTS": (make_ots(d / "RESIDE" / "OTS_BETA"), "RESIDE", "OTS"),
        "SOTS-indoor 640x480 gt": (make_sots_indoor(d / "RESIDE" / "SOTS" / "indoor"), "RESIDE", "SOTS-indoor"),
        "SOTS-outdoor": (make_sots_outdoor(d / "RESIDE" / "SOTS" / "outdoor"), "RESIDE", "SOTS-outdoor"),
        **{f"DehazeFormer {where}": (make_dehazeformer(d / where), "RESIDE", name) for where, name in (
            ("RESIDE-IN/train", "ITS"), ("RESIDE-IN/test", "SOTS-indoor"), ("RESIDE-OUT/train", "OTS"),
            ("RESIDE-OUT/test", "SOTS-outdoor"), ("RESIDE-6K/train", "RESIDE-6K-train"),
            ("RESIDE-6K/test", "RESIDE-6K-test"))},
        "NH-HAZE one folder": (make_numbered(d / "NH-HAZE", True, 6), "NumberedHaze", "NH-HAZE"),
        "Dense-Haze two folders": (make_numbered(d / "Dense-Haze", False, 6), "NumberedHaze", "Dense-Haze"),
        "NH-HAZE plain names": (make_rain_folders(d / "NTIRE2020" / "NH-HAZE", "hazy", "gt", "{:02d}.png", "{:02d}.png"),
                                "NumberedHaze", "NH-HAZE"),
        "Rain X2": (make_rain_x2(d / "Rain200H" / "train", range(1, 4)), "Rain", "Rain200H-train"),
        "Rain one folder": (make_rain_folders(d / "RainTrainL", "", ""), "Rain", "Rain100L-train"),
        "Rain rainy/": (make_rain_folders(d / "Rain100H" / "test", "rainy", ""), "Rain", "Rain100H-test"),
        "Rain rainy/ norain/": (make_rain_folders(d / "Rain200L" / "test", "rainy", "norain"), "Rain", "Rain200L-test"),
        "Rain input/ target/": (make_rain_input_target(d / "Rain100L" / "test", range(1, 4)), "Rain", "Rain100L-test"),
        "MSPFN R100H": (make_rain_folders(d / "test_data" / "R100H", "inputcrop", "cleancrop", "{}.png", "{}.png"),
                        "Rain", "Rain100H-test"),
        "DID-data": (make_side_by_side(d / "DID-MDN-datasets" / "DID-MDN-test"), "SideBySide", "DID-test"),
        "LOL": (make_lol(d / "LOL", 3, 2), "LOL", "LOL-train"),
        "LOL eval15": (d / "LOL" / "eval15", "LOL", "LOL-test"),
        "LOL-v2 real": (make_lol_v2_real(d / "LOL-v2" / "Real_captured", 3, 2), "LOL", "LOL-v2-real-train"),
        "LOL-v2 synthetic": (make_lol_v2_synthetic(d / "LOL-v2" / "Synthetic", 3, 2), "LOL", "LOL-v2-synthetic-train"),
        "unpaired DICM": (d / "DICM", "ImageFolder", "DICM"),
        "unpaired photos": (d / "photos", "ImageFolder", None),
        "two folders of equal names": (d / "mine", "PairedFolder", None),
    }


@pytest.fixture(scope="module")
def every_layout(tmp_path_factory):
    return _every_layout(tmp_path_factory.mktemp("every_layout") / "data #1: x")  # a path YAML must quote


@pytest.mark.parametrize("case", [
    "ITS", "OTS", "SOTS-indoor 640x480 gt", "SOTS-outdoor", "DehazeFormer RESIDE-IN/train",
    "DehazeFormer RESIDE-IN/test", "DehazeFormer RESIDE-OUT/train", "DehazeFormer RESIDE-OUT/test",
    "DehazeFormer RESIDE-6K/train", "DehazeFormer RESIDE-6K/test", "NH-HAZE one folder", "Dense-Haze two folders",
    "NH-HAZE plain names", "Rain X2", "Rain one folder", "Rain rainy/", "Rain rainy/ norain/", "Rain input/ target/",
    "MSPFN R100H", "DID-data", "LOL", "LOL eval15", "LOL-v2 real", "LOL-v2 synthetic", "unpaired DICM",
    "unpaired photos", "two folders of equal names"])
def test_check_dataset_without_type_names_the_reader_of_every_layout(every_layout, case, capsys):
    folder, reader, benchmark = every_layout[case]
    check = load_script("scripts/check_dataset")
    chosen = check.detect(str(folder))
    assert (chosen.cfg["type"], chosen.dataset.benchmark) == (reader, benchmark)
    out = capsys.readouterr().out
    assert f"\nchosen: {reader} (" in out
    snippet = next(line for line in out.splitlines() if line.startswith("chosen: ")).split("; in a config: ", 1)[1]
    assert yaml.safe_load(snippet) == chosen.cfg  # pasted into a config, it reads this folder
    assert f"recognised {benchmark} [" in out or benchmark is None
    assert check.main([str(folder)]) == 0
    assert f"{reader} at {folder}: {len(chosen.dataset)} samples, 0 problem(s)" in capsys.readouterr().out


READER_TYPES = st.sampled_from(["LOL", "NumberedHaze", "Rain", "RESIDE", "PairedFolder", "ImageFolder", "SideBySide"])


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(READER_TYPES, st.sampled_from([None, "ITS", "DICM"])), min_size=1, max_size=6,
                unique_by=lambda t: t[0]))
def test_the_choice_among_readers(tries):
    """A reader that recognises a benchmark first; then one of its own layouts before ImageFolder and SideBySide;
    then the order of TRIES."""
    check = load_script("scripts/check_dataset")
    order = [kind for kind, _ in check.TRIES]
    found = [check.Reading({"type": kind}, types.SimpleNamespace(benchmark=name))
             for kind, name in sorted(tries, key=lambda t: order.index(t[0]))]
    best, why = check.choose(found)
    pool = [r for r in found if r.dataset.benchmark] or found
    pool = [r for r in pool if r.cfg["type"] not in ("ImageFolder", "SideBySide")] or pool
    assert best is pool[0] and why


def test_check_dataset_says_in_one_line_what_a_folder_no_reader_reads_holds(tmp_path, capsys):
    check = load_script("scripts/check_dataset")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "hazy").mkdir()
    code, lines = run_cli(check.main, [str(tmp_path)], capsys)
    assert code == 2 and lines == [f"data error: {tmp_path}: no reader reads this folder: it holds 0 images; "
                                   "sub-folders: ['hazy']; datasets/README.md lists the layouts (--type NAME gives one "
                                   "reader's reason)"]
    code, lines = run_cli(check.main, [str(tmp_path / "missing")], capsys)
    assert code == 2 and lines == [f"data error: {tmp_path / 'missing'}: no such folder"]
    code, lines = run_cli(check.main, [str(tmp_path), "trans=true"], capsys)
    assert code == 2 and len(lines) == 1 and "key=value arguments ['trans=true'] need --type" in lines[0]


def test_predict_uses_the_config_stored_in_the_checkpoint(tmp_path):
    sots = make_sots_indoor(tmp_path / "SOTS" / "indoor")
    cfg = _write_cfg(tmp_path, {"train": {"type": "RESIDE", "root": str(make_its(tmp_path / "ITS")), "crop": 32}})
    train_cli.main(["-c", cfg])
    weights = tmp_path / "runs" / "run" / "checkpoints" / "iter_2.pth"
    from hdm.cli import predict
    assert predict.main([str(sots / "hazy"), str(tmp_path / "out"), "--weights", str(weights)]) == 0
    assert len(os.listdir(tmp_path / "out")) == 9
    assert predict.main([str(sots / "hazy" / "1400_1.png"), str(tmp_path / "out2"), "--weights", str(weights),
                         "model.region_strategy=masked_sum"]) == 0
    with pytest.raises(ConfigError, match="model.bogus: not an argument of model HDM"):
        predict.main([str(sots / "hazy"), str(tmp_path / "out3"), "--weights", str(weights), "model.bogus=1"])


def test_unpaired_folder_scored_with_niqe_through_a_paper_config(tmp_path, capsys):
    for n in range(2):
        write_image(tmp_path / "DICM" / f"{n:02d}.jpg", RNG.random((200, 200, 3)))
    config = os.path.join(ROOT, "configs", "lowlight", "hdm_lol.yaml")
    from hdm.models import build_model
    torch.save({"model": build_model(load_config(config, TINY)["model"]).state_dict()}, tmp_path / "w.pth")
    mean = test_cli.main(["-c", config, *TINY, "data.test.type=ImageFolder",
                                     f"data.test.root={tmp_path / 'DICM'}", "--preset", "niqe", "loe",
                                     "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "res")])
    assert np.isfinite(mean["niqe.niqe"]) and mean["loe.loe"] >= 0 and mean["input_loe.loe"] == 0
    assert json.loads((tmp_path / "res" / "meta.json").read_text())["test_set"]["benchmark"] == "DICM"
