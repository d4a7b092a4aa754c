import csv
import os

import pytest
import torch
import yaml

from hdm.checkpoint import atomic_save, latest_readable_checkpoint, list_checkpoints, load_checkpoint
from hdm.cli import UsageError
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli

train_script, test_script = train_cli, test_cli


def tiny_config(tmp_path, demo_root, iterations=2):
    cfg = {
        "name": "tiny", "work_dir": str(tmp_path / "runs"), "seed": 1,
        "model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
        "data": {"train": {"type": "PairedFolder", "lq_dir": f"{demo_root}/train/hazy",
                           "gt_dir": f"{demo_root}/train/clear", "crop": 32, "augment": True},
                 "val": {"type": "PairedFolder", "lq_dir": f"{demo_root}/val/hazy", "gt_dir": f"{demo_root}/val/clear"}},
        "optim": {"lr": 1e-3},
        "train": {"iterations": iterations, "batch_size": 2, "val_every": 100, "save_every": 2, "log_every": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_train_two_iterations_then_resume_continues(tmp_path, demo_root):
    cfg = tiny_config(tmp_path, demo_root, iterations=4)
    train_script.main(["-c", cfg, "train.iterations=2"])  # a run stopped after 2 of 4 iterations ...
    run = tmp_path / "runs" / "tiny"
    first = load_checkpoint(str(run / "checkpoints" / "iter_2.pth"))
    # 3 samples, batch 2, drop_last: epoch 0 gives one batch, iteration 2 is epoch 1's first
    assert first["iteration"] == 2 and first["data_position"] == (1, 2)
    assert set(first) >= {"model", "optimizer", "scheduler", "rng", "config"}
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["iterations"] == 2

    # ... and the same run continued to 4 iterations; its schedule runs to 4, so resume from a full run instead:
    train_script.main(["-c", cfg, "name=full"])
    full_run = tmp_path / "runs" / "full"
    mid = load_checkpoint(str(full_run / "checkpoints" / "iter_2.pth"))
    end = load_checkpoint(str(full_run / "checkpoints" / "iter_4.pth"))
    os.remove(full_run / "checkpoints" / "iter_4.pth")
    train_script.main(["-c", cfg, "name=full", "--resume", "auto"])
    resumed = load_checkpoint(str(full_run / "checkpoints" / "iter_4.pth"))
    assert resumed["iteration"] == 4
    # the learning rate continues the cosine schedule where it stopped
    lr_mid = mid["optimizer"]["param_groups"][0]["lr"]
    assert resumed["scheduler"]["last_epoch"] == 4 and mid["scheduler"]["last_epoch"] == 2
    assert resumed["optimizer"]["param_groups"][0]["lr"] == pytest.approx(end["optimizer"]["param_groups"][0]["lr"])
    assert lr_mid == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi / 2)).item()))
    # data order, augmentation and weights continue exactly as in the uninterrupted run
    for key, value in end["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_latest_checkpoint_orders_by_iteration(tmp_path):
    for it in (2, 10, 9):
        atomic_save({"model": {}}, tmp_path / f"iter_{it}.pth")
    assert [it for it, _ in list_checkpoints(str(tmp_path))] == [2, 9, 10]
    assert latest_readable_checkpoint(str(tmp_path))[0].endswith("iter_10.pth")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="x.pth"):
        load_checkpoint(str(tmp_path / "x.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint(str(tmp_path / "missing.pth"))


def test_test_script_writes_csv_and_summary(tmp_path, demo_root, capsys):
    cfg = tiny_config(tmp_path, demo_root)
    train_script.main(["-c", cfg])
    weights = str(tmp_path / "runs" / "tiny" / "checkpoints" / "iter_2.pth")
    out = tmp_path / "results"
    mean = test_script.main(["-c", cfg, "--weights", weights, "--out", str(out), "--save-images"])
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert [r["name"] for r in rows] == ["chelsea_0"]
    assert float(rows[0]["psnr"]) == pytest.approx(mean["psnr"])
    assert (out / "images" / "chelsea_0.png").exists()
    printed = capsys.readouterr().out
    assert "input (degraded)" in printed and "ffa_rgb" in printed
    assert (out / "summary.md").read_text().startswith("| method |")


def test_test_script_rejects_weights_of_another_model(tmp_path, demo_root):
    cfg = tiny_config(tmp_path, demo_root)
    train_script.main(["-c", cfg])
    weights = str(tmp_path / "runs" / "tiny" / "checkpoints" / "iter_2.pth")
    with pytest.raises(UsageError, match="--weights: .*the config's model differs .*dim=16 \\(trained as 8\\)"):
        test_script.main(["-c", cfg, "model.dim=16", "--weights", weights])
