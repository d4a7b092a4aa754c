"""Training that survives: kill and resume, signals, corrupted checkpoints, pruning, non-finite losses."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from hdm.checkpoint import list_checkpoints, load_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(tmp_path, demo_root, name="run", **train):
    cfg = {"name": name, "work_dir": str(tmp_path / "runs"), "seed": 3,
           "model": {"type": "HDM", "dim": 16, "groups": 1, "blocks_per_group": 1},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{demo_root}/train/hazy",
                              "gt_dir": f"{demo_root}/train/clear", "crop": 64, "augment": True}},
           "optim": {"lr": 1e-3},
           "train": {"iterations": 60, "batch_size": 2, "save_every": 5, "log_every": 1, "keep_last": 100, **train}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def start(cfg, *args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), "-c", cfg, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - t0 < timeout
        time.sleep(0.02)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, demo_root):
    cfg = config(tmp_path, demo_root)
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    proc = start(cfg)
    wait_for(ckpts / "iter_10.pth", proc)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    assert not (ckpts / "iter_60.pth").exists()
    resumed = start(cfg, "--resume", "auto")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    straight = start(config(tmp_path, demo_root, name="straight"))
    assert straight.wait(timeout=300) == 0
    a = load_checkpoint(str(ckpts / "iter_60.pth"))["model"]
    b = load_checkpoint(str(tmp_path / "runs" / "straight" / "checkpoints" / "iter_60.pth"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_at_the_end_of_the_step_and_says_so(tmp_path, demo_root):
    cfg = config(tmp_path, demo_root, save_every=1000)
    proc = start(cfg)
    log = tmp_path / "runs" / "run" / "train.log"
    t0 = time.time()
    while "iter 3/" not in (log.read_text() if log.exists() else ""):
        assert time.time() - t0 < 120 and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM  # saved but not finished: never 0
    saved = list_checkpoints(str(tmp_path / "runs" / "run" / "checkpoints"))
    assert len(saved) == 1 and 3 <= saved[0][0] < 60
    assert f"stopped by SIGTERM at iteration {saved[0][0]}; checkpoint saved; continue with --resume auto" in out


def load_train():
    import importlib.util
    spec = importlib.util.spec_from_file_location("train_script", os.path.join(ROOT, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_corrupted_newest_checkpoint_falls_back_with_a_warning(tmp_path, demo_root):
    train = load_train()
    cfg = config(tmp_path, demo_root, iterations=4, save_every=2)
    train.main(["-c", cfg, "train.iterations=4"])
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    newest = ckpts / "iter_4.pth"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a crash during a copy
    train.main(["-c", cfg, "train.iterations=6", "--resume", "auto"])
    log = (tmp_path / "runs" / "run" / "train.log").read_text().splitlines()
    assert any(f"resuming from {ckpts / 'iter_2.pth'} instead of the unreadable {newest}" in line for line in log)
    assert load_checkpoint(str(ckpts / "iter_6.pth"))["iteration"] == 6


def test_keep_last_and_best(tmp_path, demo_root):
    train = load_train()
    cfg = config(tmp_path, demo_root, iterations=6, save_every=1, keep_last=2, val_every=2)
    with open(cfg) as f:
        raw = yaml.safe_load(f)
    raw["data"]["val"] = {"type": "PairedFolder", "lq_dir": f"{demo_root}/val/hazy", "gt_dir": f"{demo_root}/val/clear"}
    with open(cfg, "w") as f:
        yaml.safe_dump(raw, f)
    train.main(["-c", cfg])
    ckpts = tmp_path / "runs" / "run" / "checkpoints"
    # the newest keep_last, and the newest validated with finite outputs when the last one was written (4)
    assert [it for it, _ in list_checkpoints(str(ckpts))] == [4, 5, 6]
    best = torch.load(ckpts / "best.pth", weights_only=True)
    log = (tmp_path / "runs" / "run" / "train.log").read_text()
    scores = {int(m[0]): float(m[1]) for m in re.findall(r"val iter (\d+): psnr ([\d.]+)", log)}
    assert best["iteration"] == max(scores, key=scores.get) and best["selection"]["by"] == "best validation psnr"
    assert best["val"]["psnr"] == pytest.approx(scores[best["iteration"]], abs=1e-3)
    assert not [p for p in os.listdir(ckpts) if p.endswith(".tmp")]


class NaNData(torch.utils.data.Dataset):
    """Two images, the second one full of NaN (as a broken preprocessing step would give)."""

    def __init__(self, size=32):
        self.size = size

    def __len__(self):
        return 2

    def __getitem__(self, i):
        lq = torch.rand(3, self.size, self.size) if i == 0 else torch.full((3, self.size, self.size), float("nan"))
        return {"lq": lq, "gt": torch.rand(3, self.size, self.size), "lq_path": f"img{i}.png", "gt_path": f"gt{i}.png"}


def test_nonfinite_losses_are_skipped_then_stop_training(tmp_path, monkeypatch):
    import hdm.data
    from hdm.config import load_config
    from hdm.engine import TrainingStopped, fit
    monkeypatch.setitem(hdm.data.DATASETS, "NaNData", NaNData)
    cfg_path = tmp_path / "nan.yaml"
    cfg_path.write_text(yaml.safe_dump({"name": "nan", "work_dir": str(tmp_path / "runs"),
                                        "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
                                        "data": {"train": {"type": "NaNData"}},
                                        "train": {"iterations": 50, "batch_size": 1, "save_every": 1,
                                                  "max_nonfinite": 2}}))
    cfg = load_config(str(cfg_path))
    with pytest.raises(TrainingStopped, match="2 non-finite losses in a row"):
        fit(cfg)
    log = (tmp_path / "runs" / "nan" / "train.log").read_text()
    assert "non-finite loss, step not applied" in log and "img1.png" in log
    # every saved checkpoint is finite
    for _, path in list_checkpoints(str(tmp_path / "runs" / "nan" / "checkpoints")):
        assert all(torch.isfinite(v).all() for v in load_checkpoint(path)["model"].values() if v.is_floating_point())
