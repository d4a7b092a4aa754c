"""scripts/demo.py reuses a model's result only when its run folder recorded it for the same resolved config
and code (hdm.results.recorded_result, the rule sweeps follow); otherwise it trains, and a run folder of
another config is moved aside first, so runs/<name>/config.yaml always describes what ran."""
import os

import yaml

from hdm.config import load_config

from .helpers import ROOT, load_script


def demo_config(tmp_path, root, iterations):
    return load_config(os.path.join(ROOT, "configs", "demo", "hdm_demo.yaml"), [
        f"work_dir={tmp_path / 'runs'}", f"data.train.lq_dir={root}/train/hazy", f"data.train.gt_dir={root}/train/clear",
        f"data.val.lq_dir={root}/val/hazy", f"data.val.gt_dir={root}/val/clear", "data.train.crop=32",
        "train.batch_size=2", f"train.iterations={iterations}", "train.val_every=100", "train.save_every=2",
        "train.log_every=1", "model.dim=8", "model.blocks_per_group=1", "model.groups=1"])


def test_the_demo_reuses_a_result_only_for_the_same_config(tmp_path, demo_root, capsys):
    demo = load_script("scripts/demo")
    first = demo.train_or_reuse(demo_config(tmp_path, demo_root, 2))
    again = demo.train_or_reuse(demo_config(tmp_path, demo_root, 2))
    assert "reusing the result" in capsys.readouterr().out and again[1] == first[1]
    demo.train_or_reuse(demo_config(tmp_path, demo_root, 4))  # another config: trained, never the old rows
    out = capsys.readouterr().out
    assert "reusing" not in out and "moved to" in out
    run_dir = tmp_path / "runs" / "hdm_demo"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["iterations"] == 4
    moved = [p for p in os.listdir(tmp_path / "runs") if p.startswith("hdm_demo.old-")]
    assert len(moved) == 1  # the 2-iteration run, kept whole
    assert yaml.safe_load((tmp_path / "runs" / moved[0] / "config.yaml").read_text())["train"]["iterations"] == 2
