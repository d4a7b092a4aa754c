"""Identity and outputs: one function decides whether two paths are one file, whether two sets share
images, and what a tool may write; the rules built on them (validation overlap, resume data, output
names, existing results, live run folders) are tested with generated cases."""
import os
import shutil
import string
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdm.cli import evaluate as evaluate_cli
from hdm.cli import predict as predict_cli
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli
from hdm.data.demo import make_demo
from hdm.errors import RunFolderError, UsageError
from hdm.identity import name_key, same_path, shared_images
from hdm.image_io import write_image
from hdm.outputs import check_writable_outputs, plan_outputs, unique_stems
from hdm.run_folder import move_aside
from tests.helpers import ROOT, SPELLINGS, held_folder, load_script, run_cli, spell

RNG = np.random.default_rng(0)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_config(tmp_path, demo_root, name="run", val=None, **train):
    val = val or {"type": "PairedFolder", "lq_dir": f"{demo_root}/val/hazy", "gt_dir": f"{demo_root}/val/clear"}
    cfg = {"name": name, "work_dir": str(tmp_path / "runs"), "seed": 2,
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{demo_root}/train/hazy",
                              "gt_dir": f"{demo_root}/train/clear", "crop": 32}, "val": val},
           "train": {"iterations": 2, "batch_size": 2, "val_every": 2, "save_every": 2, "log_every": 1, **train}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


# ----------------------------------------------------------------------------- same_path, shared_images



@SETTINGS
@given(st.lists(st.sampled_from(SPELLINGS), min_size=2, max_size=2), st.booleans())
def test_same_path_sees_through_every_spelling(tmp_path, spellings, folder):
    target = tmp_path / "data" / ("sub" if folder else "x.png")
    target.parent.mkdir(exist_ok=True)
    if folder:
        target.mkdir(exist_ok=True)
    else:
        target.write_bytes(b"abc")
    a, b = (spell(str(target), how, tmp_path) for how in spellings)
    assert same_path(a, b)
    other = tmp_path / "data" / ("other" if folder else "y.png")
    if folder:
        other.mkdir(exist_ok=True)
    else:
        other.write_bytes(b"abc")  # same bytes, another file
    assert not same_path(a, str(other))


def test_shared_images_by_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for i in range(4):
        write_image(a / f"{i}.png", RNG.random((8, 8, 3)))
    shutil.copy(a / "2.png", b / "copy.png")  # a byte-identical copy under another name
    (b / "same_size.png").write_bytes(bytes(len((a / "1.png").read_bytes())))  # equal size, other bytes
    write_image(b / "other.png", RNG.random((8, 8, 3)))
    got = shared_images([str(a / f"{i}.png") for i in range(4)], [str(p) for p in sorted(b.iterdir())])
    assert got == [(str(a / "2.png"), str(b / "copy.png"))]


# ----------------------------------------------------------------------------- the validation overlap rule


@pytest.mark.parametrize("how", ["dot", "absolute", "double_slash", "symlink", "copy"])
def test_validation_on_the_training_set_is_refused_however_it_is_named(tmp_path, demo_root, capsys, how):
    train_gt = f"{demo_root}/train/clear"
    if how == "copy":
        shutil.copytree(f"{demo_root}/train", tmp_path / "copy")
        lq, gt = str(tmp_path / "copy" / "hazy"), str(tmp_path / "copy" / "clear")
    else:
        lq = spell(f"{demo_root}/train/hazy", how, tmp_path)
        gt = spell(train_gt, how, tmp_path)
    cfg = write_config(tmp_path, demo_root, val={"type": "PairedFolder", "lq_dir": lq, "gt_dir": gt})
    code, err = run_cli(train_cli.main, ["-c", cfg], capsys)
    assert code == 2 and len(err) == 1 and "data.val shares 3 images with data.train" in err[0]
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- output names


NAME = st.text(alphabet=string.ascii_letters[:4] + "_-. ", min_size=1, max_size=6).filter(lambda s: s.strip(". "))


@SETTINGS
@given(st.lists(st.tuples(NAME, st.sampled_from(["png", "PNG", "jpg", "Jpg", "tif"])), min_size=1, max_size=8,
                unique_by=lambda t: t[0] + "." + t[1]),
       st.sampled_from([(), ("transmission",), ("dark_channel", "transmission", "regions")]))
def test_output_names_are_unique_on_any_filesystem_and_never_an_input(tmp_path_factory, names, extras):
    folder = tmp_path_factory.mktemp("names")
    inputs = [str(folder / f"{stem}.{ext}") for stem, ext in names]
    for path in inputs:
        open(path, "wb").close()
    plan, _ = plan_outputs(inputs, str(folder), extras)
    outputs = [p for per_input in plan.values() for p in per_input.values()]
    assert len({name_key(p) for p in outputs}) == len(outputs) == len(inputs) * (1 + len(extras))
    stems = unique_stems(inputs)
    assert all(os.path.basename(plan[p][""]) == stems[p] + ".png" for p in inputs)
    replaces_an_input = any(os.path.exists(p) for p in outputs)  # written into the inputs' own folder
    try:
        check_writable_outputs(outputs, inputs, overwrite=True)
        refused = False
    except UsageError as err:
        refused = "would replace an input" in str(err)
    assert refused == replaces_an_input


def dcp_config(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    return str(tmp_path / "c.yaml")


def test_predict_keeps_every_output_apart_and_refuses_to_replace(tmp_path, capsys):
    cfg = dcp_config(tmp_path)
    inp = tmp_path / "in"
    for name in ("a.png", "a.PNG", "a_transmission.png", "b.jpg"):
        write_image(inp / name, RNG.random((24, 32, 3)))
    out = tmp_path / "out"
    assert predict_cli.main([str(inp), str(out), "-c", cfg, "--save-maps"]) == 0
    written = sorted(os.listdir(out))
    assert len({name_key(n) for n in written}) == len(written) == 4 + 4 * 2  # 4 outputs and DCP's 2 maps each
    assert "a_transmission_transmission.png" in written and "a_png_transmission.png" in written
    before = {n: (out / n).read_bytes() for n in written}
    code, err = run_cli(predict_cli.main, [str(inp), str(out), "-c", cfg, "--save-maps"], capsys)
    assert code == 2 and len(err) == 1 and "exists (and 11 more outputs); give --overwrite" in err[0]
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    assert predict_cli.main([str(inp), str(out), "-c", cfg, "--overwrite"]) == 0
    code, err = run_cli(predict_cli.main, [str(inp / "a.png"), str(inp), "-c", cfg, "--overwrite"], capsys)
    assert code == 2 and "the outputs would lie among the inputs" in err[0]  # never, even with --overwrite


def test_a_map_named_like_another_output_is_renamed_and_said(tmp_path, capsys):
    inp = tmp_path / "in"
    for name in ("a.png", "a_transmission.png"):
        write_image(inp / name, RNG.random((24, 32, 3)))
    assert predict_cli.main([str(inp), str(tmp_path / "out"), "-c", dcp_config(tmp_path), "--save-maps"]) == 0
    assert "a_transmission_2.png" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["a.png", "a_dark_channel.png", "a_transmission_2.png", "a_transmission.png", "a_transmission_dark_channel.png",
         "a_transmission_transmission.png"])


# ----------------------------------------------------------------------------- results folders


def test_results_are_never_silently_replaced(tmp_path, capsys, monkeypatch):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for i in range(2):
        img = RNG.random((16, 16, 3))
        write_image(pred / f"{i}.png", img)
        write_image(gt / f"{i}.png", img * 0.9)
    evaluate_cli.main([str(pred), str(gt)])
    evaluate_cli.main([str(pred), str(gt)])
    assert os.path.isfile(f"{pred}_eval/meta.json") and os.path.isfile(f"{pred}_eval_2/meta.json")
    code, err = run_cli(evaluate_cli.main, [str(pred), str(gt), "--out", f"{pred}_eval"], capsys)
    assert code == 2 and "holds results already; give --overwrite" in err[0]
    before = open(f"{pred}_eval/summary.md").read()
    evaluate_cli.main([str(pred), str(gt), "--out", f"{pred}_eval", "--overwrite"])
    moved = [p for p in os.listdir(tmp_path) if p.startswith("pred_eval.old-")]
    assert len(moved) == 1 and open(tmp_path / moved[0] / "summary.md").read() == before
    for spelling in (".", "./", f"../{pred.name}//"):  # the default beside the predictions, however they are written
        monkeypatch.chdir(pred)
        evaluate_cli.main([spelling, str(gt)])
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("pred_eval_")) == ["pred_eval_2", "pred_eval_3",
                                                                                      "pred_eval_4", "pred_eval_5"]


def test_test_py_out_onto_results_needs_overwrite(tmp_path, capsys):
    root = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=1)
    cfg = tmp_path / "dcp.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"type": "DCP"}, "work_dir": str(tmp_path / "runs"),
                                   "data": {"test": {"type": "PairedFolder", "lq_dir": f"{root}/val/hazy",
                                                     "gt_dir": f"{root}/val/clear"}}}))
    test_cli.main(["-c", str(cfg), "--out", str(tmp_path / "res")])
    code, err = run_cli(test_cli.main, ["-c", str(cfg), "--out", str(tmp_path / "res")], capsys)
    assert code == 2 and len(err) == 1 and "holds results already" in err[0]
    test_cli.main(["-c", str(cfg), "--out", str(tmp_path / "res"), "--overwrite"])
    assert len([p for p in os.listdir(tmp_path) if p.startswith("res.old-")]) == 1


def test_weights_outside_a_run_do_not_make_their_parent_a_run(tmp_path):
    weights = tmp_path / "repo" / "checkpoints" / "release.pth"
    weights.parent.mkdir(parents=True)
    cfg = {"name": "x", "work_dir": str(tmp_path / "runs")}
    out = test_cli.default_out(cfg, str(weights), {"root": "/d/SOTS/indoor", "benchmark": None, "holdout": 0})
    assert out.startswith(str(tmp_path / "runs" / "results" / "x" / "release_"))
    (tmp_path / "repo" / "config.yaml").write_text("name: x\n")  # now it is a run's checkpoint folder
    out = test_cli.default_out(cfg, str(weights), {"root": "/d/SOTS/indoor", "benchmark": None, "holdout": 0})
    assert out.startswith(str(tmp_path / "repo" / "test"))


# ----------------------------------------------------------------------------- pairing by number


def test_pairing_by_number_refuses_two_targets_for_one_number(tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    clean = RNG.random((16, 16, 3))
    write_image(pred / "norain-1x2.png", clean)
    write_image(gt / "norain-1.png", clean)
    write_image(gt / "rain-1.png", clean * 0.5)  # rain and norain in one folder: two targets for number 1
    code, err = run_cli(evaluate_cli.main, [str(pred), str(gt), "--pairing", "number"], capsys)
    assert code == 2 and len(err) == 1 and "two targets for one number key 1" in err[0]
    os.remove(gt / "rain-1.png")
    write_image(gt / "01.png", clean)  # 1 and 01
    code, err = run_cli(evaluate_cli.main, [str(pred), str(gt), "--pairing", "number"], capsys)
    assert code == 2 and "01.png" in err[0] and "norain-1.png" in err[0]


# ----------------------------------------------------------------------------- live run folders


def test_overwrite_never_moves_a_live_run(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    train_cli.main(["-c", cfg])
    run = tmp_path / "runs" / "run"
    with held_folder(run) as holder:
        code, err = run_cli(train_cli.main, ["-c", cfg, "--overwrite"], capsys)
        assert code == 2 and f"is in use by process {holder.pid}" in err[0]
        assert os.listdir(tmp_path / "runs") == ["run"]
        with pytest.raises(RunFolderError):
            move_aside(str(run))


def test_a_second_sweep_on_a_live_sweep_folder_is_refused(tmp_path, capsys):
    sweep = load_script("scripts/sweep")
    with held_folder(tmp_path / "sweep") as holder:
        code, err = run_cli(sweep.main, ["--configs", os.path.join(ROOT, "configs/demo/dcp_demo.yaml"),
                                         "--out", str(tmp_path / "sweep")], capsys)
    assert code == 2 and len(err) == 1 and f"in use by process {holder.pid}" in err[0]


@pytest.mark.parametrize("racers", [2, 4])
def test_of_processes_racing_for_a_lock_exactly_one_holds_it(tmp_path, racers):
    """Processes that start together on a folder whose lock file a killed process left: one takes it."""
    folder = tmp_path / "race"
    with held_folder(folder):
        pass  # killed: its lock file stays behind
    code = ("import sys, time; from hdm.locks import FolderLock; from hdm.errors import RunFolderError\n"
            "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
            "try:\n    FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(3)\n"
            "except RunFolderError:\n    print('refused', flush=True)")
    start = __import__("time").time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", code, str(folder), str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(racers)]
    said = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert said == ["held"] + ["refused"] * (racers - 1)


# ----------------------------------------------------------------------------- resume reads the same data


def test_resume_with_another_training_set_is_refused_and_a_moved_copy_is_not(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    train_cli.main(["-c", cfg])
    other = make_demo("haze", str(tmp_path / "other"), samples_per_photo=2)  # another set: more images
    code, err = run_cli(train_cli.main, ["-c", cfg, "--resume", "auto", "train.iterations=4",
                                         f"data.train.lq_dir={other}/train/hazy", f"data.train.gt_dir={other}/train/clear"],
                        capsys)
    assert code == 2 and len(err) == 1 and "data.train (other images: 6 samples now, 3" in err[0]
    shutil.copytree(f"{demo_root}/train", tmp_path / "moved")  # the same images in another place
    train_cli.main(["-c", cfg, "--resume", "auto", "train.iterations=4", f"data.train.lq_dir={tmp_path}/moved/hazy",
                    f"data.train.gt_dir={tmp_path}/moved/clear"])
    assert os.path.isfile(tmp_path / "runs" / "run" / "checkpoints" / "iter_4.pth")
    first = sorted(os.listdir(tmp_path / "moved" / "hazy"))[0]  # an input changed in place, its size kept
    with open(tmp_path / "moved" / "hazy" / first, "r+b") as f:
        f.seek(-20, os.SEEK_END)
        data = f.read(4)
        f.seek(-20, os.SEEK_END)
        f.write(bytes(b ^ 0xFF for b in data))
    code, err = run_cli(train_cli.main, ["-c", cfg, "--resume", "auto", "train.iterations=6",
                                         f"data.train.lq_dir={tmp_path}/moved/hazy", f"data.train.gt_dir={tmp_path}/moved/clear"],
                        capsys)
    assert code == 2 and len(err) == 1 and "data.train (other images" in err[0], err


def test_resume_from_weights_only_is_refused_before_work(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    train_cli.main(["-c", cfg])
    best = tmp_path / "runs" / "run" / "checkpoints" / "best.pth"
    code, err = run_cli(train_cli.main, ["-c", cfg, "--resume", str(best), "train.iterations=4"], capsys)
    assert code == 2 and len(err) == 1 and "holds weights, not a training state" in err[0]


def test_results_never_move_or_cover_an_input(tmp_path, capsys):
    res, gt = tmp_path / "res", tmp_path / "gt"
    img = RNG.random((16, 16, 3))
    write_image(res / "images" / "0.png", img)  # a results folder of test.py whose images are now scored
    write_image(gt / "0.png", img)
    (res / "summary.md").write_text("earlier\n")
    code, err = run_cli(evaluate_cli.main, [str(res / "images"), str(gt), "--out", str(res), "--overwrite"], capsys)
    assert code == 2 and len(err) == 1 and "the outputs would lie among the inputs" in err[0]
    assert os.listdir(res / "images") == ["0.png"] and (res / "summary.md").read_text() == "earlier\n"


@pytest.mark.parametrize("names", [("1.png", "01.png"), ("rain-1.png", "norain-1.png")])
def test_pairing_by_number_refuses_two_results_for_one_target(tmp_path, capsys, names):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for name in names:
        write_image(pred / name, RNG.random((16, 16, 3)))
    write_image(gt / "1.png", RNG.random((16, 16, 3)))
    code, err = run_cli(evaluate_cli.main, [str(pred), str(gt), "--pairing", "number"], capsys)
    assert code == 2 and len(err) == 1 and "two results for one number key 1" in err[0]
    # the RESIDE prefix pairing shares targets on purpose: a scene's hazy versions share its clear image
    for name in ("1400_1.png", "1400_2.png"):
        write_image(tmp_path / "sots" / name, RNG.random((16, 16, 3)))
    write_image(tmp_path / "sots_gt" / "1400.png", RNG.random((16, 16, 3)))
    evaluate_cli.main([str(tmp_path / "sots"), str(tmp_path / "sots_gt"), "--pairing", "prefix"])


def test_a_folder_listed_twice_in_one_set_is_refused(tmp_path, demo_root, capsys):
    side = tmp_path / "side"
    for i in range(3):
        write_image(side / f"{i}.png", RNG.random((20, 40, 3)))
    cfg = write_config(tmp_path, demo_root, val=None)
    code, err = run_cli(train_cli.main, ["-c", cfg, "data.val=null", "data.train.type=SideBySide", "data.train.crop=16",
                                         f"data.train.root=[{side}, {side}/]", "--check"], capsys)
    assert code == 2 and len(err) == 1 and "one file read twice in one set" in err[0]


def test_sweep_labels_tell_configs_of_one_name_apart(tmp_path):
    sweep = load_script("scripts/sweep")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.yaml").write_text("model: {type: DCP}\n")
    paths = [str(tmp_path / "a" / "x.yaml"), str(tmp_path / "b" / "x.yaml")]
    assert sweep.config_labels(paths) == ["a/x", "b/x"]
    with pytest.raises(UsageError, match="lists .* twice"):
        sweep.config_labels([paths[0], str(tmp_path / "a" / "." / "x.yaml")])


def test_selected_on_the_tested_set_is_judged_by_content(tmp_path, demo_root):
    cfg = write_config(tmp_path, demo_root)
    train_cli.main(["-c", cfg])
    best = str(tmp_path / "runs" / "run" / "checkpoints" / "best.pth")
    renamed = tmp_path / "renamed"  # the validation images under other names, and one more image
    for sub in ("hazy", "clear"):
        (renamed / sub).mkdir(parents=True)
        for i, name in enumerate(sorted(os.listdir(f"{demo_root}/val/{sub}"))):
            shutil.copy(f"{demo_root}/val/{sub}/{name}", renamed / sub / f"cat{i}.png")
        first = sorted(os.listdir(f"{demo_root}/train/{sub}"))[0]
        shutil.copy(f"{demo_root}/train/{sub}/{first}", renamed / sub / "x.png")
    mean = test_cli.main(["-c", cfg, "--weights", best, "--out", str(tmp_path / "res"),
                          "data.test.type=PairedFolder", f"data.test.lq_dir={renamed}/hazy",
                          f"data.test.gt_dir={renamed}/clear"])
    meta = __import__("json").load(open(tmp_path / "res" / "meta.json"))
    assert mean and meta["checkpoint"]["selected_on_tested_set"] and meta["checkpoint"]["shared_images"] == 1


def test_an_image_that_fails_leaves_none_of_its_outputs(tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    for name in ("a.png", "b.png"):
        write_image(inp / name, RNG.random((24, 32, 3)))
    (out / "a_transmission.png").mkdir(parents=True)  # a's last map cannot be written
    code, err = run_cli(predict_cli.main, [str(inp), str(out), "-c", dcp_config(tmp_path), "--save-maps", "--overwrite"],
                        capsys)
    assert code == 1 and len(err) == 1 and "a_transmission.png" in err[0]
    assert sorted(os.listdir(out)) == ["a_transmission.png", "b.png", "b_dark_channel.png", "b_transmission.png"]
    assert os.path.isdir(out / "a_transmission.png")  # what was there stays


def test_a_results_folder_never_lies_among_the_inputs(tmp_path, capsys):
    root = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=1)
    shutil.copy(f"{root}/val/clear/chelsea_0.png", f"{root}/val/clear/comparison.png")  # an input named like a result
    shutil.copy(f"{root}/val/hazy/chelsea_0.png", f"{root}/val/hazy/comparison.png")
    cfg = tmp_path / "dcp.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"type": "DCP"}, "work_dir": str(tmp_path / "runs"),
                                   "data": {"test": {"type": "PairedFolder", "lq_dir": f"{root}/val/hazy",
                                                     "gt_dir": f"{root}/val/clear"}}}))
    for out in (f"{root}/val/clear", f"{root}/val", f"{root}/val/clear/results", str(tmp_path)):  # the last holds dcp.yaml
        code, err = run_cli(test_cli.main, ["-c", str(cfg), "--out", out, "--overwrite"], capsys)
        assert code == 2 and len(err) == 1 and "the outputs would lie among the inputs" in err[0], out
    for out in (f"{root}/val/hazy", f"{root}/val/hazy/restored", f"{root}/val"):  # hdm-predict on a folder: apart too
        code, err = run_cli(predict_cli.main, [f"{root}/val/hazy", out, "-c", str(cfg), "--overwrite"], capsys)
        assert code == 2 and len(err) == 1 and "the outputs would lie among the inputs" in err[0], out
    assert not os.path.exists(f"{root}/val/hazy/restored")
    assert sorted(os.listdir(f"{root}/val/clear")) == ["chelsea_0.png", "comparison.png"]


@pytest.mark.parametrize("maps", [False, True])
def test_an_output_name_longer_than_a_file_name_may_be_is_refused_before_work(tmp_path, capsys, maps):
    """Inputs whose names fit, outputs whose names would not (`<stem>_png.png`, `<stem>_dark_channel.png`)."""
    inp, stem = tmp_path / "in", "x" * 250
    for ext in (".png", ".jpg"):
        write_image(inp / (stem + ext), RNG.random((8, 8, 3)))
    argv = [str(inp), str(tmp_path / "out"), "-c", dcp_config(tmp_path)] + (["--save-maps"] if maps else [])
    code, err = run_cli(predict_cli.main, argv, capsys)
    assert code == 2 and len(err) == 1 and "more than the 255 a file name may have" in err[0]
    assert not os.path.exists(tmp_path / "out")


def test_one_input_file_is_never_restored_beside_itself_and_is_read_before_work(tmp_path, capsys):
    inp = tmp_path / "in"
    write_image(inp / "a.jpg", RNG.random((8, 8, 3)))
    os.mkfifo(inp / "pipe.png")
    for out, said in ((inp, "holds the input"), (tmp_path, "holds the input")):
        code, err = run_cli(predict_cli.main, [str(inp / "a.jpg"), str(out), "-c", dcp_config(tmp_path)], capsys)
        assert code == 2 and len(err) == 1 and said in err[0], err
    code, err = run_cli(predict_cli.main, [str(inp / "pipe.png"), str(tmp_path / "o"), "-c", dcp_config(tmp_path)], capsys)
    assert code == 2 and err == [f"error: {inp / 'pipe.png'}: a named pipe (FIFO), expected a regular file"]
    for device in ("cpu:1", "cuda:0") if not torch.cuda.is_available() else ("cpu:1",):
        code, err = run_cli(predict_cli.main, [str(inp / "a.jpg"), str(tmp_path / "o"), "-c", dcp_config(tmp_path),
                                               "--device", device], capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith("error: --device: device: "), err
    assert sorted(os.listdir(inp)) == ["a.jpg", "pipe.png"] and not os.path.exists(tmp_path / "o")
    assert predict_cli.main([str(inp / "a.jpg"), str(inp / "restored"), "-c", dcp_config(tmp_path)]) == 0  # a folder below
