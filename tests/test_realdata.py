"""The readers on real benchmark files, as public repositories pass them around (../shared/realdata, its
README.md gives each file's source; a clone without it skips these tests). The files are copied into
folders named as their release names them, so recognition is tested as a user meets it."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from hdm.data import RESIDE, ImageFolder, PairedFolder, Rain, benchmarks
from hdm.metrics import get_metric
from tests.helpers import ROOT, load_script

REALDATA = os.path.join(os.path.dirname(ROOT), "shared", "realdata")
# input PSNR (dB) and SSIM of each pair through the ffa_rgb preset, from the files as distributed
# (realdata/README.md); the PSNR is also computed in plain NumPy by the test
SOTS_INPUT = {"1400_1": (14.785, 0.7958), "1401_2": (16.727, 0.7977), "1402_3": (14.028, 0.6570),
              "1403_4": (10.558, 0.5796), "1404_5": (12.655, 0.7517)}
RAIN100L_INPUT = {"1": (16.150, 0.5690), "2": (21.133, 0.6525), "3": (24.207, 0.8802)}
# (height, width) of the Rain100L test pairs 1, 2, 3 (the set's images are of several sizes)
RAIN100L_SIZES = {"1": (512, 384), "2": (480, 320), "3": (384, 512)}


def realdata(name):
    """The path of a realdata folder; skips the test when it is not here."""
    path = os.path.join(REALDATA, name)
    if not os.path.isdir(path):
        pytest.skip(f"{path}: no real benchmark files here (a clone without ../shared/realdata)")
    return path


def copied(name, tmp_path, where, rename=None):
    """realdata/<name> copied to tmp_path/<where>, its sub-folders renamed by `rename` ({old: new})."""
    target = tmp_path / where
    shutil.copytree(realdata(name), target)
    for old, new in (rename or {}).items():
        os.rename(target / old, target / new)
    return target


def numpy_psnr(lq_path, gt_path):
    """PSNR of two 8-bit RGB files, decoded by PIL, in plain NumPy (peak 1)."""
    lq, gt = (np.asarray(Image.open(p).convert("RGB"), np.float64) / 255 for p in (lq_path, gt_path))
    return 10 * np.log10(1 / np.mean((lq - gt) ** 2))


def assert_input_scores(ds, expected):
    """Each input against its target by the ffa_rgb preset, as test.py scores it: PSNR as NumPy computes it
    from the files, and both scores as `expected` ({input name: (PSNR, SSIM)})."""
    metric = get_metric("ffa_rgb")
    scores = {}
    for i in range(len(ds)):
        s = ds[i]
        got = metric(s["lq"][None], s["gt"][None])
        psnr, ssim = float(got["psnr"][0]), float(got["ssim"][0])
        assert psnr == pytest.approx(numpy_psnr(s["lq_path"], s["gt_path"]), abs=1e-5)
        scores[os.path.splitext(os.path.basename(s["lq_path"]))[0]] = (round(psnr, 3), round(ssim, 4))
    assert scores == expected


def test_sots_indoor_in_dehazeformers_layout(tmp_path):
    """Before: '5 of 5 hazy images have no clear image'; now SOTS-indoor, paired by name, counted against
    DehazeFormer's copy (500 / 500)."""
    root = copied("sots_indoor_dehazeformer", tmp_path, "data/RESIDE-IN/test")
    ds = RESIDE(str(root))
    assert (len(ds), ds.found, ds.benchmark, ds.is_test_set) == (5, (5, 5), "SOTS-indoor", True)
    assert ds.version == "hazy/ with GT/ of the same names"
    assert [os.path.basename(gt) for _, gt, _ in ds.samples] == [f"{n}.png" for n in SOTS_INPUT]
    assert all(os.path.basename(lq) == os.path.basename(gt) for lq, gt, _ in ds.samples)
    report = ds.check()
    assert dict(report.sizes) == {(460, 620): 5} and report.border_pairs == 0 and not report.problems
    differs, line = benchmarks.count_line("data.test", ds.benchmark, ds.found)
    assert differs and "500 / 50 (Li et al." in line and "500 / 500 (SOTS-indoor as DehazeFormer's RESIDE-IN/test" in line
    assert ds.scenes == ["1400", "1401", "1402", "1403", "1404"]
    held = RESIDE(str(root), holdout=2, take="holdout")
    assert len(held) == 2 and not held.is_test_set
    assert_input_scores(ds, SOTS_INPUT)
    # two folders of equal names read too, but as no benchmark: the test-set rules would not apply
    assert PairedFolder(str(root / "hazy"), str(root / "GT")).benchmark is None


def test_check_dataset_names_the_sots_copy_as_datasets_readme_shows(tmp_path, monkeypatch, capsys):
    copied("sots_indoor_dehazeformer", tmp_path, "data/RESIDE-IN/test")
    monkeypatch.chdir(tmp_path)
    check = load_script("scripts/check_dataset")
    assert check.main(["data/RESIDE-IN/test"]) == 0
    out = capsys.readouterr().out.splitlines()
    with open(os.path.join(ROOT, "datasets", "README.md")) as f:
        readme = f.read()
    shown = readme.split("$ python scripts/check_dataset.py data/RESIDE-IN/test\n", 1)[1].split("```", 1)[0]
    assert out[:len(shown.splitlines())] == shown.splitlines()
    assert "RESIDE at data/RESIDE-IN/test: 5 samples, 0 problem(s)" in out
    assert " ".join(check.TARGET_FOLDERS) in " ".join(readme.split())


@pytest.mark.parametrize("where,rename", [("Rain100L/test", None),
                                          ("test_data/R100L", {"input": "inputcrop", "target": "cleancrop"})])
def test_rain100l_test_pairs(tmp_path, where, rename):
    """As MPRNet and Restormer copies ship it (input/, target/) and in MSPFN's folder names."""
    root = copied("rain100l_mprnet", tmp_path, where, rename)
    ds = Rain(str(root))
    assert (len(ds), ds.found, ds.benchmark, ds.is_test_set) == (3, (3, 3), "Rain100L-test", True)
    assert [(os.path.basename(lq), os.path.basename(gt)) for lq, gt, _ in ds.samples] == [
        (f"{n}.png", f"{n}.png") for n in RAIN100L_SIZES]
    report = ds.check()
    assert sorted(report.sizes) == sorted(RAIN100L_SIZES.values()) and not report.problems
    if rename is None:  # the same files under other folder names: scored once
        assert_input_scores(ds, RAIN100L_INPUT)


@pytest.mark.parametrize("name,where,benchmark,sizes", [
    ("dicm", "DICM", "DICM", [(720, 960), (640, 960), (960, 720)]),
    ("real_hazy", "real_hazy", None, [(450, 600), (768, 1024)])])
def test_unpaired_photos(tmp_path, capsys, name, where, benchmark, sizes):
    root = copied(name, tmp_path, where)
    ds = ImageFolder(str(root))
    assert (len(ds), ds.benchmark) == (len(sizes), benchmark)
    report = ds.check()
    assert [report.sizes[s] for s in sizes] == [1] * len(sizes) and report.grey == 0
    check = load_script("scripts/check_dataset")
    assert check.detect(str(root)).cfg == {"type": "ImageFolder", "root": str(root)}
    assert "chosen: ImageFolder (" in capsys.readouterr().out
