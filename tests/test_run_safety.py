"""Training that refuses to lose work: run folders, locks, resume rules, the non-finite guard, EMA and
GAN resume equality, one-line errors with exit codes, and images and writes that fail cleanly."""
import errno
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from hdm import files
from hdm.checkpoint import list_checkpoints, load_checkpoint
from hdm.cli import evaluate as evaluate_cli
from hdm.cli import predict as predict_cli
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli
from hdm.config import load_config
from hdm.data.demo import make_demo
from hdm.engine import TrainingStopped, fit
from hdm.image_io import read_image, write_image
from tests.helpers import ROOT, held_folder, run_cli

RNG = np.random.default_rng(0)


def write_config(tmp_path, demo_root, name="run", val=True, **train):
    cfg = {"name": name, "work_dir": str(tmp_path / "runs"), "seed": 2,
           "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{demo_root}/train/hazy",
                              "gt_dir": f"{demo_root}/train/clear", "crop": 32, "augment": True},
                    "val": {"type": "PairedFolder", "lq_dir": f"{demo_root}/val/hazy",
                            "gt_dir": f"{demo_root}/val/clear"} if val else None},
           "optim": {"lr": 1e-3},
           "train": {"iterations": 4, "batch_size": 2, "val_every": 2, "save_every": 2, "log_every": 1, **train}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def snapshot(folder):
    return {os.path.relpath(os.path.join(top, n), folder): os.path.getmtime(os.path.join(top, n))
            for top, _, names in os.walk(folder) for n in names}


# ----------------------------------------------------------------------------- run folders


def test_a_second_start_with_the_same_name_is_refused_and_overwrite_moves_it_aside(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    train_cli.main(["-c", cfg])
    run = tmp_path / "runs" / "run"
    before = snapshot(run)
    code, err = run_cli(train_cli.main, ["-c", cfg, "optim.lr=5e-4"], capsys)
    assert code == 2 and len(err) == 1 and "already holds a run (iter_4.pth)" in err[0] and "--resume auto" in err[0]
    assert snapshot(run) == before  # nothing touched: no pruning, no new best.pth, no log lines
    train_cli.main(["-c", cfg, "--overwrite"])
    moved = [p for p in os.listdir(tmp_path / "runs") if p.startswith("run.old-")]
    assert len(moved) == 1 and snapshot(tmp_path / "runs" / moved[0]) == before  # the old run, whole


def test_resume_auto_with_every_checkpoint_unreadable_is_an_error(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    train_cli.main(["-c", cfg])
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    for _, path in list_checkpoints(str(ckpts)):
        with open(path, "r+b") as f:
            f.truncate(100)
    best = (ckpts / "best.pth").read_bytes()
    code, err = run_cli(train_cli.main, ["-c", cfg, "--resume", "auto", "train.iterations=6"], capsys)
    assert code == 2 and len(err) == 1 and "none of the 2 checkpoints" in err[0] and "nothing was started" in err[0]
    assert (ckpts / "best.pth").read_bytes() == best and not (ckpts / "iter_6.pth").exists()


@pytest.mark.parametrize("what", ["missing", "truncated"])
def test_resume_of_a_missing_or_truncated_file(tmp_path, demo_root, capsys, what):
    cfg = write_config(tmp_path, demo_root)
    path = tmp_path / "some.pth"
    if what == "truncated":
        path.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    code, err = run_cli(train_cli.main, ["-c", cfg, "--resume", str(path)], capsys)
    assert code == 2 and len(err) == 1 and str(path) in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_second_live_process_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    run = tmp_path / "runs" / "run"
    with held_folder(run) as holder:
        code, err = run_cli(train_cli.main, ["-c", cfg], capsys)
        assert code == 2 and f"in use by process {holder.pid}" in err[0]
        assert not (run / "checkpoints" / "iter_2.pth").exists()
    # the process is gone now (killed): its lock file is left, and taken
    assert (run / ".lock").exists()
    train_cli.main(["-c", cfg])
    assert (run / "checkpoints" / "iter_4.pth").exists() and not (run / ".lock").exists()


def test_two_trainings_with_one_name_at_once(tmp_path, demo_root):
    cfg = write_config(tmp_path, demo_root, val=False, iterations=100000, save_every=100000)
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), "-c", cfg], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "runs" / "run" / ".lock"
        for _ in range(600):
            if lock.exists() and (tmp_path / "runs" / "run" / "train.log").exists():
                break
            assert first.poll() is None
            __import__("time").sleep(0.05)
        second = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", cfg, "--resume", "auto"],
                                capture_output=True, text=True)
        assert second.returncode == 2 and second.stderr.strip().splitlines() == [
            f"run folder: {tmp_path / 'runs' / 'run'} is in use by process {first.pid} on {__import__('socket').gethostname()}"
            f" since {yaml.safe_load(lock.read_text())['since']}; wait for it, use another name=..."]
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 128 + signal.SIGTERM  # stopped cleanly, with a checkpoint, lock released
    assert not lock.exists() and list_checkpoints(str(tmp_path / "runs" / "run" / "checkpoints"))


def test_resume_with_a_changed_config(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root, iterations=2)
    train_cli.main(["-c", cfg])
    run = tmp_path / "runs" / "run"
    stored = (run / "config.yaml").read_text()
    for override, key in (("optim.lr=1e-2", "optim.lr"), ("model.dim=16", "model.dim")):
        code, err = run_cli(train_cli.main, ["-c", cfg, "--resume", "auto", override], capsys)
        assert code == 2 and len(err) == 1 and f"differs from the run's in {key}" in err[0]
        assert (run / "config.yaml").read_text() == stored  # not overwritten
    # a longer run: allowed, recorded, and the cosine continues to the new end without climbing back up
    train_cli.main(["-c", cfg, "--resume", "auto", "train.iterations=6", "train.save_every=1"])
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["iterations"] == 6
    lrs = [load_checkpoint(str(run / "checkpoints" / f"iter_{i}.pth"))["optimizer"]["param_groups"][0]["lr"]
           for i in (4, 5, 6)]
    expected = [1e-3 * (1 + math.cos(math.pi * i / 6)) / 2 for i in (4, 5, 6)]
    assert lrs == pytest.approx(expected, abs=1e-12) and lrs[0] > lrs[1] > lrs[2] == pytest.approx(0, abs=1e-12)


# ----------------------------------------------------------------------------- the non-finite guard


def test_non_finite_validation_names_the_last_validated_checkpoint(tmp_path, demo_root, monkeypatch):
    import hdm.engine as engine
    cfg = load_config(write_config(tmp_path, demo_root, iterations=8, keep_last=1))
    real = engine.evaluate
    calls = []

    def evaluate(*args, **kwargs):
        rows, examples = real(*args, **kwargs)
        calls.append(1)
        if len(calls) >= 2:  # from the second validation on, the weights give NaN outputs
            rows = [{k: (float("nan") if k != "name" else v) for k, v in r.items()} for r in rows]
        return rows, examples
    monkeypatch.setattr(engine, "evaluate", evaluate)
    with pytest.raises(TrainingStopped, match=r"validation at iteration 4 gave non-finite outputs.*iter_2\.pth"):
        fit(cfg)
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    assert (ckpts / "iter_2.pth").exists()  # kept by pruning although keep_last is 1: the last good one
    best = load_checkpoint(str(ckpts / "best.pth"))
    assert best["iteration"] == 2 and math.isfinite(best["val"]["psnr"])


# ----------------------------------------------------------------------------- EMA and GAN resume equality


def _resume_equals_straight(tmp_path, cfg_path, overrides=()):
    """Train 4 iterations straight, then a second run resumed from the first run's iteration-2
    checkpoint; both must end bitwise equal."""
    train_cli.main(["-c", cfg_path, *overrides])
    straight = load_checkpoint(str(tmp_path / "runs" / "run" / "checkpoints" / "iter_4.pth"))
    resumed_dir = tmp_path / "runs" / "resumed" / "checkpoints"
    resumed_dir.mkdir(parents=True)
    src = tmp_path / "runs" / "run" / "checkpoints" / "iter_2.pth"
    ckpt = load_checkpoint(str(src))
    ckpt["config"]["name"] = "resumed"
    torch.save(ckpt, resumed_dir / "iter_2.pth")
    train_cli.main(["-c", cfg_path, *overrides, "name=resumed", "--resume", "auto"])
    resumed = load_checkpoint(str(resumed_dir / "iter_4.pth"))
    for key in ("model", "ema", "discriminator"):
        if key in straight:
            assert straight[key].keys() == resumed[key].keys()
            assert all(torch.equal(straight[key][k], resumed[key][k]) for k in straight[key]), key
    return straight


def test_resume_with_ema_is_bitwise_equal_and_validation_uses_the_ema(tmp_path, demo_root):
    cfg = write_config(tmp_path, demo_root, ema_decay=0.9)
    straight = _resume_equals_straight(tmp_path, cfg)
    assert not all(torch.equal(straight["model"][k], straight["ema"][k]) for k in straight["model"])
    best = load_checkpoint(str(tmp_path / "runs" / "run" / "checkpoints" / "best.pth"))
    step = load_checkpoint(str(tmp_path / "runs" / "run" / "checkpoints" / f"iter_{best['iteration']}.pth"))
    assert best["ema_weights"] and all(torch.equal(best["model"][k], step["ema"][k]) for k in best["model"])


def test_gan_resume_under_bf16_is_bitwise_equal(tmp_path, demo_root, monkeypatch):
    monkeypatch.setenv("HDM_CPU_BF16", "1")  # bf16 even on a CPU without native bf16 (slow there, but tested)
    root = make_demo("lowlight", str(tmp_path / "lowlight"), samples_per_photo=1)
    cfg = {"name": "run", "work_dir": str(tmp_path / "runs"), "seed": 1,
           "model": {"type": "HybridNet", "width": 4, "ms_channels": 2},
           "data": {"train": {"type": "LOL", "root": root, "split": "train", "crop": 128, "augment": True}},
           "losses": [{"type": "MSE", "weight": 1.0}],
           "adversarial": {"discriminator": {"type": "Discriminator", "width": 2}, "weight": 1e-3,
                           "optim": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.0}},
           "schedule": {"type": "step", "step_size": 2, "gamma": 0.5},
           "train": {"iterations": 4, "batch_size": 2, "save_every": 2, "log_every": 1, "amp": "bf16"}}
    path = tmp_path / "gan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    straight = _resume_equals_straight(tmp_path, str(path))
    assert "discriminator" in straight and "d_optimizer" in straight


# ----------------------------------------------------------------------------- one line, the right exit code


BAD_OVERRIDES = [("optim.type=SGD", "optim.type: 'SGD' is not one of Adam, AdamW"),
                 ("schedule.type=warmup", "schedule.type: 'warmup' is not one of cosine, step"),
                 ("model.dim=-1", "model.dim: expected an integer in [8, 1024], got -1"),
                 ("model.region=bogus", "model.region: 'bogus' is not one of dcp, learned, depth"),
                 ("data.train.crop=-5", "data.train.crop: expected null or an integer >= 1, got -5"),
                 ("device=tpu", "device: 'tpu' is not a device"),
                 ("name=[unclosed", "override name: '[unclosed' is not a valid YAML value"),
                 ("losses=[{type: Perceptual}]", "losses.0.weights_path: null, and the vgg16 loss needs"),
                 ("data.train.lq_dir=/nonexistent", "data.train.lq_dir: no such folder"),
                 ("train.ema_decay=1.5", "train.ema_decay: expected a number in [0, 1), got 1.5")]


@pytest.mark.parametrize("override,message", BAD_OVERRIDES)
def test_config_errors_are_one_line_with_exit_2_and_no_run_folder(tmp_path, demo_root, capsys, override, message):
    cfg = write_config(tmp_path, demo_root)
    code, err = run_cli(train_cli.main, ["-c", cfg, override], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content,message", [(b"base: 5\n", "base: expected the path of a config file"),
                                             (b"name: \xff\xfe\n", "not UTF-8 text"),
                                             (b"model: {type: HDM\n", "not valid YAML at line")])
def test_broken_config_files(tmp_path, capsys, content, message):
    (tmp_path / "c.yaml").write_bytes(content)
    code, err = run_cli(train_cli.main, ["-c", str(tmp_path / "c.yaml")], capsys)
    assert code == 2 and len(err) == 1 and message in err[0]


def test_debug_shows_the_traceback(tmp_path, demo_root):
    cfg = write_config(tmp_path, demo_root)
    quiet = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", cfg, "optim.type=SGD"],
                           capture_output=True, text=True)
    loud = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "-c", cfg, "optim.type=SGD", "--debug"],
                          capture_output=True, text=True)
    assert quiet.returncode == 2 and quiet.stderr.strip().splitlines() == [
        "config error: optim.type: 'SGD' is not one of Adam, AdamW"]
    assert "Traceback" in loud.stderr and "ConfigError" in loud.stderr


def test_weights_errors_of_test_and_predict(tmp_path, demo_root, capsys):
    cfg = write_config(tmp_path, demo_root)
    missing = str(tmp_path / "missing.pth")
    code, err = run_cli(test_cli.main, ["-c", cfg, "--weights", missing], capsys)
    assert code == 2 and len(err) == 1 and "missing.pth: no such checkpoint file" in err[0]
    code, err = run_cli(predict_cli.main, [f"{demo_root}/val/hazy", str(tmp_path / "out"), "--weights", missing], capsys)
    assert code == 2 and len(err) == 1 and "missing.pth: no such checkpoint file" in err[0]
    code, err = run_cli(evaluate_cli.main, [f"{demo_root}/val/hazy", str(tmp_path / "nothing")], capsys)
    assert code == 2 and len(err) == 1 and "nothing: no such folder" in err[0]  # found before work


def test_a_failing_evaluation_in_test_leaves_no_images(tmp_path, demo_root, capsys, monkeypatch):
    cfg = write_config(tmp_path, demo_root, iterations=2)
    train_cli.main(["-c", cfg])
    weights = str(tmp_path / "runs" / "run" / "checkpoints" / "iter_2.pth")
    real = test_cli.evaluate

    def failing(*args, save_dir=None, **kwargs):
        real(*args, save_dir=save_dir, **kwargs)  # writes the images, then the metric fails
        raise ValueError("a metric failed")
    monkeypatch.setattr(test_cli, "evaluate", failing)
    code, err = run_cli(test_cli.main, ["-c", cfg, "--weights", weights, "--save-images", "--out", str(tmp_path / "res")],
                        capsys)
    assert code == 1 and len(err) == 1 and "a metric failed" in err[0]
    res = tmp_path / "res"  # the folder this run created is removed again; no image is left
    assert not res.exists() or not [p for p in os.listdir(res) if not p.startswith(".")]


# ----------------------------------------------------------------------------- signals


def test_sigterm_during_validation_stops_within_an_image(tmp_path, demo_root, monkeypatch):
    import shutil

    import hdm.engine as engine
    val = tmp_path / "val"  # three validation images (the training ones mirrored: not the same images)
    shutil.copytree(f"{demo_root}/train", val)
    for image in list((val / "hazy").iterdir()) + list((val / "clear").iterdir()):
        write_image(image, read_image(image)[:, ::-1])
    cfg = load_config(write_config(tmp_path, demo_root, iterations=6, val_every=2, save_every=6))
    cfg["data"]["val"] = {"type": "PairedFolder", "lq_dir": str(val / "hazy"), "gt_dir": str(val / "clear")}
    real = engine.evaluate

    def evaluate(model, dataset, metric, device, stop=None, **kwargs):
        def metric_then_signal(out, gt, lq=None):  # SIGTERM arrives while the first image is scored
            os.kill(os.getpid(), signal.SIGTERM)
            return metric(out, gt, lq)
        return real(model, dataset, metric_then_signal, device, stop=stop, **kwargs)
    monkeypatch.setattr(engine, "evaluate", evaluate)
    with pytest.raises(engine.StoppedBySignal, match="stopped by SIGTERM at iteration 2; checkpoint saved") as err:
        fit(cfg)
    assert err.value.exit_code == 128 + signal.SIGTERM
    run = tmp_path / "runs" / "run"
    log = (run / "train.log").read_text()
    assert "validation at iteration 2 abandoned (SIGTERM)" in log and "stopped by SIGTERM at iteration 2" in log
    assert [it for it, _ in list_checkpoints(str(run / "checkpoints"))] == [2]


# ----------------------------------------------------------------------------- images and writes


def _bomb_png(path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


def test_predict_survives_a_bomb_and_names_it(tmp_path, capfd):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    write_image(tmp_path / "in" / "good.png", RNG.random((24, 32, 3)))
    _bomb_png(tmp_path / "in" / "bomb.png")
    assert predict_cli.main([str(tmp_path / "in"), str(tmp_path / "out"), "-c", str(tmp_path / "c.yaml")]) == 1
    err = capfd.readouterr().err
    assert "bomb.png: 65535x65535 = 4,294,836,225 pixels, at or above the limit of 400,000,000 pixels" in err
    assert "libpng" not in err
    assert os.listdir(tmp_path / "out") == ["good.png"]


def test_float_tiffs_and_non_finite_pixels(tmp_path):
    import cv2
    values = RNG.random((8, 10, 3)).astype(np.float32) * 0.5
    cv2.imwrite(str(tmp_path / "f.tif"), values[..., ::-1])
    assert np.allclose(read_image(tmp_path / "f.tif"), values, atol=1e-7)  # not divided by 255
    values[2, 3, 1] = np.nan
    cv2.imwrite(str(tmp_path / "nan.tif"), values[..., ::-1])
    with pytest.raises(OSError, match="nan.tif: 1 non-finite pixel values"):
        read_image(tmp_path / "nan.tif")


def test_predict_output_names_never_collide_or_replace_inputs(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "DCP"}}))
    write_image(tmp_path / "in" / "a.png", RNG.random((24, 32, 3)))
    write_image(tmp_path / "in" / "a.jpg", RNG.random((24, 32, 3)))
    assert predict_cli.main([str(tmp_path / "in"), str(tmp_path / "out"), "-c", str(tmp_path / "c.yaml")]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a_jpg.png", "a_png.png"]
    write_image(tmp_path / "same" / "b.png", RNG.random((24, 32, 3)))
    before = (tmp_path / "same" / "b.png").read_bytes()
    code, err = run_cli(predict_cli.main, [str(tmp_path / "same"), str(tmp_path / "same"), "-c", str(tmp_path / "c.yaml")],
                        capsys)
    assert code == 2 and "the outputs would lie among the inputs" in err[0]
    assert (tmp_path / "same" / "b.png").read_bytes() == before


def _full_disk(monkeypatch, after=0):
    """os.fsync in hdm.files raises ENOSPC from the (after+1)-th call on, as on a full disk."""
    calls = []
    real = os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(files.os, "fsync", fsync)


def test_a_full_disk_leaves_nothing_partial_and_names_the_file(tmp_path, monkeypatch):
    write_image(tmp_path / "x.png", np.zeros((4, 4, 3)))
    before = (tmp_path / "x.png").read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match=r"x.png: could not be written \(No space left on device\)"):
        write_image(tmp_path / "x.png", np.ones((4, 4, 3)))
    assert os.listdir(tmp_path) == ["x.png"] and (tmp_path / "x.png").read_bytes() == before


def test_a_checkpoint_write_on_a_full_disk_is_one_line_and_keeps_the_previous(tmp_path, demo_root, capsys, monkeypatch):
    cfg = write_config(tmp_path, demo_root, val=False, save_every=1)
    import hdm.engine as engine
    real_save = engine.save_checkpoint

    def save(run, state):
        if state.iteration == 2:
            _full_disk(monkeypatch)
        real_save(run, state)
    monkeypatch.setattr(engine, "save_checkpoint", save)
    code, err = run_cli(train_cli.main, ["-c", cfg], capsys)
    assert code == 1 and len(err) == 1 and "iter_2.pth: could not be written (No space left on device)" in err[0]
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    assert sorted(os.listdir(ckpts)) == ["iter_1.pth"] and load_checkpoint(str(ckpts / "iter_1.pth"))["iteration"] == 1


def test_a_bomb_in_the_training_set_is_found_before_work(tmp_path, capsys):
    for name in ("a", "b"):
        write_image(tmp_path / "lq" / f"{name}.png", RNG.random((40, 40, 3)))
        write_image(tmp_path / "gt" / f"{name}.png", RNG.random((40, 40, 3)))
    _bomb_png(tmp_path / "lq" / "b.png")
    cfg = {"name": "run", "work_dir": str(tmp_path / "runs"), "model": {"type": "HDM", "dim": 8, "groups": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": str(tmp_path / "lq"), "gt_dir": str(tmp_path / "gt"),
                              "crop": 32}},
           "train": {"iterations": 2, "batch_size": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, err = run_cli(train_cli.main, ["-c", str(tmp_path / "c.yaml")], capsys)
    assert code == 2 and err == [f"data error: data.train: {tmp_path / 'lq' / 'b.png'}: 65535x65535 = 4,294,836,225 "
                                 f"pixels, at or above the limit of 400,000,000 pixels (set HDM_MAX_PIXELS to allow it)"]
    assert not (tmp_path / "runs").exists()


def test_an_unwritable_work_dir_is_one_line(tmp_path, demo_root, capsys):
    (tmp_path / "a_file").write_text("a file where the work_dir folder should be")  # unwritable even for root
    cfg = write_config(tmp_path, demo_root)
    code, err = run_cli(train_cli.main, ["-c", cfg, f"work_dir={tmp_path / 'a_file'}"], capsys)
    assert code == 2 and len(err) == 1 and "cannot create the run folder" in err[0] and "check work_dir" in err[0]


def test_best_survives_a_resume_after_its_validation(tmp_path, demo_root, monkeypatch):
    """iter_4.pth is written before iteration 4's validation, so it holds the best of iteration 2; a
    resumed run must compare with best.pth (iteration 4), not with that stale score."""
    import hdm.engine as engine
    scores = iter([10.0, 20.0, 15.0])  # validations at iterations 2, 4 and, after the resume, 6

    def evaluate(model, dataset, metric, device, **kwargs):
        psnr = next(scores)
        return [{"name": "x", "psnr": psnr, "ssim": 0.5}], []
    monkeypatch.setattr(engine, "evaluate", evaluate)
    cfg = write_config(tmp_path, demo_root, iterations=4)
    train_cli.main(["-c", cfg])
    best = tmp_path / "runs" / "run" / "checkpoints" / "best.pth"
    assert load_checkpoint(str(best))["iteration"] == 4
    assert load_checkpoint(str(tmp_path / "runs" / "run" / "checkpoints" / "iter_4.pth"))["best"]["iteration"] == 2
    train_cli.main(["-c", cfg, "--resume", "auto", "train.iterations=6"])
    assert load_checkpoint(str(best))["iteration"] == 4 and load_checkpoint(str(best))["val"]["psnr"] == 20.0
