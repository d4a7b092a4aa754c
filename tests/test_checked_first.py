"""Everything that can be checked before work is checked before it, in one place per rule, and a failure
leaves nothing behind: the least image a metric preset scores (hdm.metrics.least_side, checked from the
headers by training, test.py, hdm-evaluate, sweeps and the demo), the scores a table needs
(hdm.metrics.SCORES), every run of a sweep and every config of the demo before the first trains, folders a
failed call made (hdm.files.made_folder) and results it moved aside (put back)."""
import os

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdm.checkpoint import atomic_save
from hdm.cli import evaluate as evaluate_cli
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli
from hdm.cli.predict import main as predict
from hdm.config import load_config
from hdm.files import made_folder
from hdm.image_io import write_image
from hdm.metrics import METRIC_PRESETS, SCORES, get_metric, least_side
from hdm.models import build_model

from .helpers import ROOT, load_script, lpips_weight_files, run_cli

RNG = np.random.default_rng(0)


def preset_options(preset, folder, net="alex"):
    return lpips_weight_files(folder, net) if preset == "lpips" else {}


@pytest.mark.parametrize("preset,net", [(p, "alex") for p in METRIC_PRESETS] + [("lpips", "vgg")])
def test_least_side_is_where_each_preset_starts_scoring(tmp_path, preset, net):
    """At least_side a preset scores (and gives SCORES' names); one pixel less, it refuses (ValueError)."""
    options = preset_options(preset, str(tmp_path), net)
    metric = get_metric(preset, **options)
    side = least_side(preset, options)
    a, b = torch.rand(1, 3, side, side + 3), torch.rand(1, 3, side + 3, side).transpose(2, 3)
    assert tuple(metric(a, b, lq=b)) == SCORES[preset]
    if side > 1:
        with pytest.raises(ValueError):
            metric(a[..., :-1, :], b[..., :-1, :], lq=b[..., :-1, :])


@given(crop=st.integers(0, 64), extra=st.integers(-2, 2))
@settings(max_examples=15, deadline=None, derandomize=True)
def test_basicsr_least_side_counts_its_border(crop, extra):
    side = least_side("basicsr", {"crop_border": crop}) + extra
    a = torch.rand(1, 3, side, side)
    metric = get_metric("basicsr", crop_border=crop)
    if extra >= 0:
        assert set(metric(a, a.flip(-1))) == {"psnr", "ssim"}
    else:
        with pytest.raises(ValueError):
            metric(a, a.flip(-1))


@pytest.fixture
def small_pairs(tmp_path):
    """A tiny HDM config on pairs of 40 x 48 images (train and val)."""
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            img = RNG.random((40, 48, 3))
            write_image(tmp_path / split / "gt" / f"{i}.png", img)
            write_image(tmp_path / split / "lq" / f"{i}.png", img * 0.7 + 0.2)
    cfg = {"model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {s: {"type": "PairedFolder", "lq_dir": str(tmp_path / s / "lq"), "gt_dir": str(tmp_path / s / "gt")}
                    for s in ("train", "val")},
           "train": {"iterations": 2, "batch_size": 1, "val_every": 2, "save_every": 2, "log_every": 1},
           "work_dir": str(tmp_path / "runs"), "name": "tiny"}
    cfg["data"]["train"]["crop"] = 32
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def leaves_nothing(tmp_path, before):
    return sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("override,words", [
    (["eval.preset=niqe"], ["data.val", "niqe", "96 x 96", "40x48"]),
    (["eval.preset=basicsr", "eval.options={crop_border: 15}"], ["data.val", "basicsr", "crop_border 15", "41 x 41"]),
    (["eval.preset=matlab_y_uint8", "data.val.crop=8"], ["data.val", "matlab_y_uint8", "11 x 11", "crop is 8"]),
])
def test_training_refuses_a_validation_set_its_preset_cannot_score_before_any_work(tmp_path, small_pairs, capsys,
                                                                                   override, words):
    before = sorted(os.listdir(tmp_path))
    for flags in (["--check"], []):
        code, err = run_cli(train_cli.main, ["-c", small_pairs, *override, *flags], capsys)
        assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), err
        assert leaves_nothing(tmp_path, before)


def test_test_script_refuses_a_preset_that_cannot_score_the_set_before_any_work(tmp_path, small_pairs, capsys):
    before = sorted(os.listdir(tmp_path))
    for presets in (["niqe"], ["ffa_rgb", "niqe"], ["basicsr"]):
        extra = ["eval.preset=basicsr", "eval.options={crop_border: 20}"] if presets == ["basicsr"] else []
        code, err = run_cli(test_cli.main, ["-c", small_pairs, *extra, "--preset", *presets], capsys)
        assert code == 2 and len(err) == 1 and "data.val" in err[0] and presets[-1] in err[0], err
        assert leaves_nothing(tmp_path, before)


def test_evaluate_checks_the_border_its_options_crop(tmp_path, capsys):
    write_image(tmp_path / "pred" / "a.png", RNG.random((30, 40, 3)))
    write_image(tmp_path / "gt" / "a.png", RNG.random((30, 40, 3)))
    args = [str(tmp_path / "pred"), str(tmp_path / "gt"), "--preset", "basicsr", "--out", str(tmp_path / "a" / "b" / "c")]
    code, err = run_cli(evaluate_cli.main, [*args, "--option", "crop_border=10"], capsys)
    assert code == 2 and len(err) == 1 and "at least 31 x 31" in err[0]
    assert not (tmp_path / "a").exists()
    assert set(evaluate_cli.main([*args, "--option", "crop_border=9"])) == {"psnr", "ssim"}


@pytest.mark.parametrize("grid,words", [
    ("data.train.crop=32,4000", ["data.train.crop", "4000"]),
    ("eval.preset=ffa_rgb,niqe", ["eval.preset", "niqe", "psnr and ssim"]),
    ("model.dim=8,0", ["model.dim"]),
])
def test_a_sweep_checks_every_run_before_the_first_trains(tmp_path, small_pairs, capsys, grid, words):
    sweep = load_script("scripts/sweep")
    out = tmp_path / "sweep"
    code, err = run_cli(sweep.main, ["--base", small_pairs, "--grid", grid, "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), err
    assert not out.exists()  # nothing ran, and the folder this command made is gone again


def test_sweep_collect_and_macs_size_are_checked_first(tmp_path, small_pairs, capsys):
    sweep = load_script("scripts/sweep")
    out = tmp_path / "never_ran"
    code, err = run_cli(sweep.main, ["--base", small_pairs, "--grid", "optim.lr=1e-4", "--out", str(out), "--collect"],
                        capsys)
    assert code == 2 and len(err) == 1 and "no sweep there" in err[0] and not out.exists()
    code, err = run_cli(sweep.main, ["--base", small_pairs, "--grid", "optim.lr=1e-4", "--out", str(out),
                                     "--macs-size", "0", "0"], capsys)
    assert code == 2 and len(err) == 1 and "--macs-size" in err[0] and not out.exists()


def test_the_demo_checks_every_config_before_the_first_trains(tmp_path, capsys, monkeypatch):
    """An override that fits the first config (HDM's blocks) but not a later one (AECR-Net has none) is
    refused before any model trains."""
    demo = load_script("scripts/demo")
    trained = []
    monkeypatch.setattr(demo, "train_or_reuse", lambda cfg: trained.append(cfg["name"]))
    for override in ("model.blocks_per_group=1", "eval.preset=niqe"):
        code, err = run_cli(demo.main, ["--task", "haze", override, f"work_dir={tmp_path / 'runs'}"], capsys)
        assert code == 2 and len(err) == 1 and trained == [], err
    assert not (tmp_path / "runs").exists()


@given(depth=st.integers(1, 4), fail=st.booleans(), write=st.booleans())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_failed_block_leaves_no_folder_it_made(tmp_path, depth, fail, write):
    base = tmp_path / f"case_{depth}_{fail}_{write}"
    base.mkdir(exist_ok=True)
    (base / "kept").mkdir(exist_ok=True)
    folder = base.joinpath("kept", *[f"d{i}" for i in range(depth)])
    try:
        with made_folder(str(folder)):
            assert folder.is_dir()
            if write:
                (folder / "result.txt").write_text("x")
            if fail:
                raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert (base / "kept").is_dir()  # a folder that was there stays
    assert folder.is_dir() == write  # what the block wrote stays; an empty folder it made never does
    if write:
        assert (folder / "result.txt").read_text() == "x"


def test_a_failed_overwrite_puts_the_earlier_results_back(tmp_path, capsys):
    write_image(tmp_path / "pred" / "a.png", RNG.random((30, 40, 3)))
    write_image(tmp_path / "gt" / "a.png", RNG.random((30, 40, 3)))
    out = tmp_path / "ev"
    evaluate_cli.main([str(tmp_path / "pred"), str(tmp_path / "gt"), "--out", str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    (tmp_path / "pred" / "a.png").write_bytes(b"not an image any more")  # found while scoring
    write_image(tmp_path / "pred" / "b.png", RNG.random((30, 40, 3)))
    code, err = run_cli(evaluate_cli.main, [str(tmp_path / "pred"), str(tmp_path / "gt"), "--pairing", "name",
                                            "--out", str(out), "--overwrite"], capsys)
    assert code in (1, 2) and len(err) == 1 and "moved" not in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith("ev.old-")]


def test_compare_results_never_writes_among_its_inputs(tmp_path, capsys):
    compare = load_script("scripts/compare_results")
    for folder, shift in (("A", 0.0), ("B", 0.1)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "per_image.csv").write_text("name,psnr\n" + "".join(f"{i},{20 + i + shift}\n" for i in range(5)))
    for out in ("A", "A/sub", "B"):
        code, err = run_cli(compare.main, [str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / out)], capsys)
        assert code == 2 and len(err) == 1 and "among the inputs" in err[0]
    assert sorted(os.listdir(tmp_path / "A")) == ["per_image.csv"]
    compare.main([str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "C")])
    code, err = run_cli(compare.main, [str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "C")], capsys)
    assert code == 2 and "exists" in err[0]
    compare.main([str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "C"), "--overwrite"])


def test_config_yaml_says_the_precision_that_ran(tmp_path, small_pairs, monkeypatch):
    monkeypatch.setenv("HDM_CPU_BF16", "0")  # bf16 asked, fp32 runs
    run_dir = train_cli.main(["-c", small_pairs, "train.amp=bf16", "data.val=null"])
    text = open(os.path.join(run_dir, "config.yaml")).read()
    assert text.startswith("# train.amp: bf16 was asked; this run computes in fp32 (no autocast) on cpu\n")
    assert yaml.safe_load(text)["train"]["amp"] == "bf16"  # the config asked stays the config (resume compares it)
    run_dir = train_cli.main(["-c", small_pairs, "name=fp32", "data.val=null"])
    assert not open(os.path.join(run_dir, "config.yaml")).read().startswith("#")


def test_test_script_saves_bf16_outputs_and_lists_what_it_wrote(tmp_path, small_pairs, monkeypatch, capsys):
    monkeypatch.setenv("HDM_CPU_BF16", "1")  # bf16 autocast on any CPU
    weights = save_weights(small_pairs, tmp_path / "w.pth")
    test_cli.main(["-c", small_pairs, "--weights", weights, "--amp", "--save-images", "--out", str(tmp_path / "res"),
                   "eval.grid_images=0"])
    listed = capsys.readouterr().out.strip().splitlines()[-1]
    assert listed.endswith("(per_image.csv, summary.md, meta.json, images)")
    assert sorted(os.listdir(tmp_path / "res")) == ["images", "meta.json", "per_image.csv", "summary.md"]
    assert os.listdir(tmp_path / "res" / "images") == ["0.png"]


def save_weights(config, path):
    """Weights of a config's model (initialised as built), saved as a checkpoint; returns the path."""
    atomic_save({"model": build_model(load_config(config)["model"]).state_dict()}, path)
    return str(path)


def test_predict_refuses_save_maps_for_a_model_without_maps(tmp_path, capsys):
    config = os.path.join(ROOT, "configs", "demo", "aecrnet_demo.yaml")
    write_image(tmp_path / "in.png", RNG.random((24, 24, 3)))
    weights = save_weights(config, tmp_path / "w.pth")
    code, err = run_cli(predict, [str(tmp_path / "in.png"), str(tmp_path / "out"), "-c", config, "--weights", weights,
                                  "--save-maps"], capsys)
    assert code == 2 and len(err) == 1 and "--save-maps" in err[0] and "AECRNet" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_run_folder_never_lies_among_its_data_nor_holds_them(tmp_path, small_pairs, capsys):
    """The data folder as the run folder, or inside it, is refused before work (--overwrite would move the
    images aside); a file where the run folder would be is refused too."""
    data = tmp_path / "train"
    before = sorted(p.name for p in data.rglob("*"))
    for where in ([f"work_dir={data}", "name=lq"], [f"work_dir={tmp_path}", "name=train"]):
        for flags in (["--check"], [], ["--overwrite"]):
            code, err = run_cli(train_cli.main, ["-c", small_pairs, *where, *flags], capsys)
            assert code == 2 and len(err) == 1 and "lie in one another" in err[0], err
    assert sorted(p.name for p in data.rglob("*")) == before
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny").write_text("a file where the run folder would be")
    code, err = run_cli(train_cli.main, ["-c", small_pairs, "--check"], capsys)
    assert code == 2 and len(err) == 1 and "not a folder" in err[0]


def test_sweeps_and_the_demo_check_every_run_folder_before_the_first_trains(tmp_path, small_pairs, capsys, monkeypatch):
    sweep = load_script("scripts/sweep")
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "dim_16_s0").write_text("a file where the second run's folder would be")
    code, err = run_cli(sweep.main, ["--base", small_pairs, "--grid", "model.dim=8,16", "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1 and "dim_16_s0" in err[0] and sorted(os.listdir(out)) == ["dim_16_s0"]
    code, err = run_cli(sweep.main, ["--base", small_pairs, "--grid", "optim.lr=1e-3,0.001", "--out", str(tmp_path / "s2")],
                        capsys)
    assert code == 2 and len(err) == 1 and "same config" in err[0] and not (tmp_path / "s2").exists()
    demo = load_script("scripts/demo")
    monkeypatch.setattr(demo, "train_or_reuse", lambda cfg: pytest.fail("trained before every config was checked"))
    code, err = run_cli(demo.main, ["--task", "haze", "name=same", f"work_dir={tmp_path / 'runs'}"], capsys)
    assert code == 2 and len(err) == 1 and "share one run folder" in err[0]


def test_test_script_checks_the_maps_a_model_reads_before_any_work(tmp_path, small_pairs, capsys):
    depth = ["model.region=depth"]
    weights = save_weights(small_pairs, tmp_path / "w.pth")  # the region rule has no weights of its own
    code, err = run_cli(test_cli.main, ["-c", small_pairs, *depth, "--weights", weights, "--out", str(tmp_path / "r")],
                        capsys)
    assert code == 2 and len(err) == 1 and "transmission maps" in err[0] and not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags,named", [(["--overlap", "8"], "--overlap"), (["--threads", "2"], "--threads"),
                                         (["--models", "x.yaml:y.pth"], "-c")])
def test_predict_refuses_an_option_it_would_ignore(tmp_path, small_pairs, capsys, flags, named):
    write_image(tmp_path / "in.png", RNG.random((24, 24, 3)))
    code, err = run_cli(predict, [str(tmp_path / "in.png"), str(tmp_path / "out"), "-c", small_pairs, *flags], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {named}: applies only") and not (tmp_path / "out").exists()


def test_sigterm_stops_a_tool_and_leaves_no_folder_it_made(tmp_path, small_pairs):
    import signal
    import subprocess
    import sys
    import time

    for i in range(12):
        write_image(tmp_path / "many" / f"{i}.png", RNG.random((160, 160, 3)))
    weights = save_weights(small_pairs, tmp_path / "w.pth")
    out = tmp_path / "a" / "b" / "res"
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "test.py"), "-c", small_pairs, "--weights", weights,
                             "data.val.lq_dir=" + str(tmp_path / "many"), "data.val.gt_dir=" + str(tmp_path / "many"),
                             "--ensemble", "--save-images", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    for _ in range(600):
        if (out / ".lock").exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines() == ["stopped by SIGTERM before it finished; nothing partial was left"]
    assert not (tmp_path / "a").exists()


def test_other_tools_check_their_outputs_and_images_first(tmp_path, small_pairs, capsys):
    compare = load_script("scripts/compare_results")
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "per_image.csv").write_text("name,psnr\n1,20\n2,21\n")
    (tmp_path / "afile").write_text("x")
    code, err = run_cli(compare.main, [str(tmp_path / "A"), str(tmp_path / "B"), "--out", str(tmp_path / "afile" / "c")],
                        capsys)
    assert code == 2 and len(err) == 1 and "is not a folder" in err[0]
    bench = load_script("scripts/benchmark")
    (tmp_path / "table.md").write_text("the full table")
    code, err = run_cli(bench.main, ["--tiny", "--sections", "conv", "--out", str(tmp_path / "table")], capsys)
    assert code == 2 and len(err) == 1 and "--overwrite" in err[0] and (tmp_path / "table.md").read_text() == "the full table"
    protocol = load_script("scripts/lowlight_protocol")
    write_image(tmp_path / "clean" / "a.png", RNG.random((10, 40, 3)))
    code, err = run_cli(protocol.main, ["-c", small_pairs, "--weights", small_pairs, "--clean", str(tmp_path / "clean")],
                        capsys)
    assert code == 2 and len(err) == 1 and "11 x 11" in err[0] and not (tmp_path / "clean_protocol").exists()
    write_image(tmp_path / "pred" / "a.png", RNG.random((30, 40, 3)))
    (tmp_path / "pred_eval").write_text("a file where the default results folder would be")
    write_image(tmp_path / "gt" / "a.png", RNG.random((30, 40, 3)))
    evaluate_cli.main([str(tmp_path / "pred"), str(tmp_path / "gt")])
    assert (tmp_path / "pred_eval_2" / "per_image.csv").is_file()
