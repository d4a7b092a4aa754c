import argparse
import glob
import os

import pytest
import torch
import torch.nn.functional as F
import yaml

from hdm.config import load_config
from hdm.data.demo import make_demo
from hdm.models import HDM, build_model, count_parameters
from hdm.ops.dcp import bin_masks

from .helpers import ROOT, load_script

ABL = os.path.join(ROOT, "configs", "ablations")
TINY = ["model.dim=8", "model.groups=1", "model.blocks_per_group=1"]


@pytest.mark.parametrize("row,count", [("table5_b", 493_507), ("table5_b_fa", 2_189_392), ("table5_b_fa_s", 2_241_899),
                                       ("table5_hdm_f", 2_369_291), ("table5_hdm", 2_366_406)])
def test_table5_parameter_counts(row, count):
    assert count_parameters(build_model(load_config(os.path.join(ABL, row + ".yaml"))["model"])) == count


def test_ablation_configs_state_only_their_differences():
    for path in glob.glob(os.path.join(ABL, "*.yaml")):
        raw = yaml.safe_load(open(path))
        assert raw.pop("base") == "../dehaze/hdm_its_paper.yaml"
        keys = [k for k in raw if k != "name"] + [f"model.{k}" for k in raw.get("model", {})]
        assert 1 <= len(raw) and len(keys) - ("model" in raw) <= 3, path


@pytest.mark.parametrize("order,stages", [("psr", "PSRSR"), ("prs", "PRSRS"), ("srp", "SRSRP"), ("spr", "SPRSR"),
                                          ("rps", "RPSRS"), ("rsp", "RSRSP")])
def test_table4_orders_build_and_run(order, stages):
    cfg = load_config(os.path.join(ABL, f"table4_{order}.yaml"), TINY)
    model = build_model(cfg["model"])
    assert model.stages == stages
    calls = []
    for name, letter in (("FAB", "P"), ("dcn_block", "S"), ("drconv_phy", "R")):
        getattr(model, name).register_forward_hook(lambda m, i, o, letter=letter: calls.append(letter))
    out = model(torch.rand(1, 3, 24, 28))
    assert out.shape == (1, 3, 24, 28)
    assert "".join(calls) == stages  # each letter runs once, in order; repeated letters reuse the module


@pytest.mark.parametrize("row", ["table6_dcp", "table6_learned", "table6_depth"])
def test_table6_region_sources_run(row):
    cfg = load_config(os.path.join(ABL, row + ".yaml"), TINY)
    model = build_model(cfg["model"])
    extras = {"trans": torch.rand(2, 1, 20, 24)} if model.extra_inputs else {}
    assert model(torch.rand(2, 3, 20, 24), **extras).shape == (2, 3, 20, 24)


def test_depth_masks_are_bins_of_the_transmission_map():
    model = HDM(dim=8, groups=1, blocks_per_group=1, region="depth").double().eval()
    assert model.extra_inputs == ("trans",)
    lq = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    yy = torch.linspace(0, 1, 32, dtype=torch.float64).view(1, 1, 32, 1).expand(1, 1, 32, 32)
    masks = bin_masks(F.avg_pool2d(yy, 4), 5)
    with torch.no_grad():
        assert torch.equal(model(lq, trans=yy), model(lq, mask=masks))
    with pytest.raises(ValueError, match="needs trans"):
        model(lq)


def test_hdm_f_masks_are_one_hot_and_gradients_reach_the_guide():
    model = HDM(dim=8, groups=1, blocks_per_group=1, region="learned")
    seen = []
    model.drconv.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    model(torch.rand(2, 3, 16, 16)).mean().backward()
    from hdm.models.blocks import straight_through_onehot
    masks = straight_through_onehot(model.drconv.conv_guide(seen[0]))
    assert set(masks.detach().unique().tolist()) <= {0.0, 1.0} and torch.equal(masks.detach().sum(1), torch.ones(2, 4, 4))
    assert model.drconv.conv_guide.weight.grad is not None and model.drconv.conv_guide.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("n", range(1, 9))
def test_number_of_regions(n):
    cfg = load_config(os.path.join(ABL, f"regions_n{n}.yaml"), TINY)
    model = build_model(cfg["model"]).eval()
    assert model.drconv_phy.num_regions == n
    lq = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = model(lq)
        if n == 1:  # a single dynamic conv: the mask is all ones whatever the image
            assert torch.equal(out, model(lq, mask=torch.ones(1, 1, 4, 4)))


def test_model_report_sums_to_total():
    from hdm.models.complexity import stage_report
    rows = stage_report(HDM(dim=8, groups=1, blocks_per_group=1), (32, 40))
    total = rows[-1]
    assert sum(r[1] for r in rows[:-1]) == total[1]
    assert sum(r[2] for r in rows[:-1]) == total[2]
    assert dict((r[0], r[2]) for r in rows)["conv0"] == 32 * 40 * 8 * 3 * 25  # 5x5 conv 3->8 at full size


def test_sweep_writes_a_table5_table_and_skips_finished_runs(tmp_path, monkeypatch):
    demo = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=1)
    shared = {"model": {"dim": 8, "groups": 1, "blocks_per_group": 1}, "losses": [{"type": "L1"}],
              "data": {"train": {"type": "PairedFolder", "lq_dir": f"{demo}/train/hazy", "gt_dir": f"{demo}/train/clear",
                                 "crop": 32, "augment": True},
                       "val": {"type": "PairedFolder", "lq_dir": f"{demo}/val/hazy", "gt_dir": f"{demo}/val/clear"},
                       "test": None},  # as configs/sweeps/demo.yaml: score data.val, not the paper's test set
              "train": {"iterations": 2, "batch_size": 2, "num_workers": 0, "val_every": 100, "save_every": 2,
                        "log_every": 1}}
    (tmp_path / "shared.yaml").write_text(yaml.safe_dump(shared))
    sweep = load_script("scripts/sweep")
    rows_files = sorted(glob.glob(os.path.join(ABL, "table5_*.yaml")))
    order = ["table5_b", "table5_b_fa", "table5_b_fa_s", "table5_hdm_f", "table5_hdm"]
    configs = [os.path.join(ABL, r + ".yaml") for r in order]
    assert sorted(configs) == rows_files
    args = ["--configs", *configs, "--with", str(tmp_path / "shared.yaml"), "--out", str(tmp_path / "sweep")]
    rows = sweep.main(args)
    assert [r["variant"] for r in rows] == ["input (degraded)", *order]
    text = (tmp_path / "sweep" / "table.md").read_text()
    assert sum(line.startswith("| table5_") for line in text.splitlines()) == 5
    assert f"--with {tmp_path / 'shared.yaml'}" in text and "GMACs at 256x256" in text and "| input (degraded) |" in text
    params = [r["params"] for r in rows[1:]]
    assert params[0] < params[1] < params[2] < params[4] < params[3]  # B < B+FA < B+FA+S < HDM < HDM-F
    assert all(r["macs"] > 0 for r in rows[1:]) and rows[0]["psnr_mean"] > 5  # the hazy input, scored the same way
    # evaluated once: no validation during training of the images the sweep scores
    assert "val iter" not in (tmp_path / "sweep" / "table5_b_s0" / "train.log").read_text()
    # a second call reuses every result.json instead of training again ...
    from hdm.sweep import runs

    real = runs.train_and_evaluate
    monkeypatch.setattr(runs, "train_and_evaluate", lambda *a, **k: pytest.fail("finished run trained again"))
    again = sweep.main(args)
    assert [r["reused"] for r in again[1:]] == ["1 of 1"] * 5
    assert [row["state"] for row in sweep.main(args + ["--status"])] == ["done"] * 5  # the sweep record's view
    assert [r["psnr_mean"] for r in again] == [r["psnr_mean"] for r in rows]
    # ... but not when a setting changed: that run is trained again, its old folder moved aside
    monkeypatch.setattr(runs, "train_and_evaluate", real)
    changed = sweep.main(["--configs", configs[0], "--set", "optim.lr=5e-4", *args[-4:]])
    assert [r["reused"] for r in changed[1:]] == ["0 of 1"]
    assert any(p.startswith("table5_b_s0.old-") for p in os.listdir(tmp_path / "sweep"))


def test_a_sweep_refuses_a_missing_vgg_file_before_reading_any_data(tmp_path, capsys, monkeypatch):
    """What only training needs (a VGG loss's weights file) is checked with the config, before the data
    fingerprints read any image: the data here are not even there. The sweep's folder, made to hold the
    lock that refuses a second sweep there before any config is read, is removed again."""
    from hdm.sweep import runs

    from .helpers import run_cli

    monkeypatch.setattr(runs, "read_checked", lambda *a: pytest.fail("data read before the losses were checked"))
    shared = {"losses": [{"type": "L1"}, {"type": "Perceptual", "weights_path": str(tmp_path / "vgg16.pth")}],
              "data": {"train": {"type": "PairedFolder", "lq_dir": str(tmp_path / "no"), "gt_dir": str(tmp_path / "no")}}}
    (tmp_path / "shared.yaml").write_text(yaml.safe_dump(shared))
    code, err = run_cli(load_script("scripts/sweep").main, ["--configs", os.path.join(ABL, "table5_b.yaml"), "--with",
                                                              str(tmp_path / "shared.yaml"), "--out", str(tmp_path / "s")],
                        capsys)
    assert code == 2 and len(err) == 1 and "losses.1" in err[0] and "vgg16.pth" in err[0]
    assert not (tmp_path / "s").exists()


def test_sweep_grid_labels(tmp_path):
    sweep = load_script("scripts/sweep")
    args = argparse.Namespace(configs=None, base="b.yaml", grid=["model.num_regions=1,3", "optim.lr=1e-3"], set=["x=1"])
    got = sweep.variants_from_args(args)
    assert [g[0] for g in got] == ["num_regions=1, lr=1e-3", "num_regions=3, lr=1e-3"]
    assert got[1][2] == ["x=1", "model.num_regions=3", "optim.lr=1e-3"]


AECR = os.path.join(ABL, "aecrnet")


def test_aecrnet_table2_rows():
    rows = {os.path.splitext(os.path.basename(p))[0]: load_config(p) for p in glob.glob(os.path.join(AECR, "*.yaml"))}
    flags = {name: (cfg["model"]["skip"], cfg["model"]["dfe"]) for name, cfg in rows.items()}
    assert flags["table2_base"] == ("none", False) and flags["table2_mixup"] == ("mix", False)
    assert flags["table2_dfe"] == ("none", True) and flags["table2_dfe_sc"] == ("add", True)
    assert flags["table2_dfe_mixup"] == flags["table2_cr_star"] == flags["table2_full"] == ("mix", True)
    negatives = {name: [item.get("negatives") for item in cfg["losses"] if item["type"] == "Contrastive"]
                 for name, cfg in rows.items()}
    assert negatives["table2_dfe_mixup"] == [] and negatives["table2_cr_star"] == [0]
    assert negatives["table2_full"] == [1] and negatives["table4_1to10"] == [10]
    assert count_parameters(build_model(rows["table2_full"]["model"])) == 2_614_229
    for path in glob.glob(os.path.join(AECR, "*.yaml")):
        raw = yaml.safe_load(open(path))
        assert raw.pop("base") == "../../dehaze/aecrnet_its.yaml" and len(raw) <= 3, path


def test_paper_configs_cover_every_task_and_state_the_target():
    expected = {"dehaze/hdm_its_paper.yaml": "38.56", "dehaze/hdm_nhhaze.yaml": "22.48", "dehaze/hdm_densehaze.yaml": "15.97",
                "derain/hdm_rain100l.yaml": "38.94", "derain/hdm_rain200h.yaml": "29.93", "derain/hdm_did.yaml": "32.91",
                "lowlight/hdm_lol.yaml": "23.45", "dehaze/aecrnet_its.yaml": "37.17", "dehaze/aecrnet_nhhaze.yaml": "19.88",
                "dehaze/aecrnet_densehaze.yaml": "15.80"}
    for rel, target in expected.items():
        path = os.path.join(ROOT, "configs", rel)
        cfg = load_config(path)
        assert target in open(path).read(), rel
        assert cfg["optim"]["lr"] == 2e-4 and cfg["train"]["batch_size"] == 16 and cfg["schedule"]["type"] == "cosine"
        assert cfg["data"]["train"]["crop"] == 240 and len(cfg["losses"]) == 2, rel
    presets = {rel.split("/")[0]: load_config(os.path.join(ROOT, "configs", rel))["eval"]["preset"] for rel in expected}
    assert presets == {"dehaze": "ffa_rgb", "derain": "matlab_y_uint8", "lowlight": "lol_rgb"}
    # 100 epochs as iterations: ceil(100 * pairs / 16)
    assert load_config(os.path.join(ROOT, "configs", "derain", "hdm_rain200h.yaml"))["train"]["iterations"] == 11250
