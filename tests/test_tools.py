import os

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hdm.checkpoint import atomic_save
from hdm.cli import UsageError
from hdm.cli import evaluate as evaluate_cli
from hdm.cli import test as test_cli
from hdm.cli import train as train_cli
from hdm.cli.predict import main as predict
from hdm.errors import DataError
from hdm.image_io import read_image, write_image
from hdm.inference import restore
from hdm.metrics import psnr_rgb
from hdm.models import HDM

from .helpers import ROOT, SPELLINGS, load_script, released_listing, run_cli, spell


@pytest.fixture
def small_model(tmp_path):
    """A small HDM saved as a checkpoint, with its config."""
    torch.manual_seed(0)
    model_cfg = {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}
    model = HDM(**{k: v for k, v in model_cfg.items() if k != "type"})
    atomic_save({"model": model.state_dict()}, tmp_path / "w.pth")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": model_cfg}))
    return model.eval(), str(tmp_path / "c.yaml"), str(tmp_path / "w.pth")


def test_tiled_inference_matches_whole_image(small_model):
    model, _, _ = small_model
    x = torch.rand(1, 3, 70, 90)
    whole = restore(model, x)
    one_tile = restore(model, x, tile=96, overlap=8)
    assert torch.allclose(one_tile, whole, atol=1e-6)  # one tile covering everything: same masks, same output
    tiled = restore(model, x, tile=48, overlap=16)
    assert tiled.shape == whole.shape
    assert psnr_rgb(tiled, whole).item() > 30  # only the receptive field at tile seams differs
    with pytest.raises(ValueError, match="multiples of 4"):
        restore(model, x, tile=50)


@pytest.mark.parametrize("kind", ["HDM", "AECRNet", "HybridNet"])
def test_tiles_equal_the_whole_image_on_a_trained_model(tmp_path, kind):
    """A briefly trained model (its channel attention varies with the image, unlike random weights'):
    the split tiling is the whole-image output to float rounding at the default overlap, where
    whole-model tiles blended with ramps are visibly off."""
    from hdm.data.demo import make_demo
    from hdm.inference import _replicate_pad, _restore_blended, load_model
    root = make_demo("haze", str(tmp_path / "haze"), samples_per_photo=1)
    model_cfg = {"HDM": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1},
                 "AECRNet": {"type": "AECRNet", "ngf": 8},
                 "HybridNet": {"type": "HybridNet", "width": 4, "ms_channels": 2}}[kind]
    cfg = {"name": "run", "work_dir": str(tmp_path / "runs"), "model": model_cfg, "optim": {"lr": 3e-3},
           "data": {"train": {"type": "PairedFolder", "lq_dir": f"{root}/train/hazy", "gt_dir": f"{root}/train/clear",
                              "crop": 64, "augment": True}},
           "train": {"iterations": 40, "batch_size": 3, "save_every": 40, "log_every": 40}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    train_cli.main(["-c", str(tmp_path / "c.yaml")])
    model = load_model(model_cfg, str(tmp_path / "runs" / "run" / "checkpoints" / "iter_40.pth"), torch.device("cpu"))
    lq = torch.from_numpy(read_image(f"{root}/val/hazy/" + sorted(os.listdir(f"{root}/val/hazy"))[0])).permute(2, 0, 1)[None]
    lq = lq[..., :150, :200]
    whole = restore(model, lq)
    split = restore(model, lq, tile=64)  # default overlap 48
    assert (split - whole).abs().max() * 255 < 0.01
    x = _replicate_pad(lq, (-lq.shape[-2]) % 4, (-lq.shape[-1]) % 4)
    mask = model.region_masks(x) if hasattr(model, "region_masks") else None
    blended = _restore_blended(model, x, 64, 48, mask, {})[..., :150, :200]
    assert (blended - whole).abs().max() * 255 > 0.5


@given(tile=st.integers(1, 16).map(lambda n: 4 * n), overlap_share=st.floats(0, 0.99), size=st.tuples(
    st.integers(8, 70), st.integers(8, 70)))
@example(tile=52, overlap_share=0.93, size=(60, 70))  # overlap 48
@settings(max_examples=8, deadline=None, derandomize=True)
def test_every_tiling_the_check_accepts_restores_every_model(tile, overlap_share, size):
    """Any tile and overlap restore()'s check accepts (multiples of 4, 0 <= overlap < tile) restore each
    route's model (split, strips, blended) at its whole-image shape: the hybrid's strips round to its 1/8
    scale, where a tile of 52 and an overlap of 48 were one step of 0."""
    from hdm.models import DCP, AECRNet, HybridNet

    overlap = int(tile * overlap_share) // 4 * 4
    x = torch.rand(1, 3, *size)
    for model in (HDM(dim=8, groups=1, blocks_per_group=1), AECRNet(ngf=4), HybridNet(width=4, ms_channels=2), DCP()):
        assert restore(model.eval(), x, tile=tile, overlap=overlap).shape == x.shape


def test_predict_folder_skips_bad_files_and_writes_whole_outputs(tmp_path, small_model, capsys):
    _, cfg, weights = small_model
    src = tmp_path / "in"
    write_image(src / "a.png", np.random.default_rng(0).random((33, 41, 3)))
    write_image(src / "b.jpg", np.random.default_rng(1).random((20, 24, 3)))
    (src / "broken.png").write_bytes(b"not a png")
    code = predict(["-c", cfg, "--weights", weights, str(src), str(tmp_path / "out"), "--tile", "16", "--overlap", "4"])
    assert code == 1
    assert "broken.png" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png"]
    assert read_image(str(tmp_path / "out" / "a.png")).shape == (33, 41, 3)


def test_predict_cascade_applies_models_in_order(tmp_path, small_model):
    model, cfg, weights = small_model
    write_image(tmp_path / "x.png", np.random.default_rng(0).random((24, 28, 3)))
    code = predict([str(tmp_path / "x.png"), str(tmp_path / "out"), "--models", f"{cfg}:{weights}", f"{cfg}:{weights}"])
    assert code == 0
    x = torch.from_numpy(read_image(str(tmp_path / "x.png"))).permute(2, 0, 1)[None]
    with torch.no_grad():
        twice = model(model(x).clamp(0, 1)).clamp(0, 1)
    got = torch.from_numpy(read_image(str(tmp_path / "out" / "x.png"))).permute(2, 0, 1)[None]
    assert (got - twice).abs().max() <= 1 / 255 + 1e-6


def test_evaluate_script_pairs_by_prefix_and_records_provenance(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.random((32, 32, 3))
    write_image(tmp_path / "gt" / "1400.png", gt)
    write_image(tmp_path / "pred" / "1400_1.png", gt)
    write_image(tmp_path / "pred" / "1400_2.png", np.clip(gt + 0.1, 0, 1))
    evaluate = evaluate_cli
    mean = evaluate.main([str(tmp_path / "pred"), str(tmp_path / "gt"), "--pairing", "prefix", "--preset", "basicsr",
                          "--option", "y=true", "--out", str(tmp_path / "ev")])
    assert 20 < mean["psnr"] < 100
    meta = yaml.safe_load((tmp_path / "ev" / "meta.json").read_text())
    assert meta["preset"] == "basicsr" and meta["options"] == {"y": True} and "torch" in meta
    with pytest.raises(UsageError, match="no target"):
        evaluate.main([str(tmp_path / "pred"), str(tmp_path / "gt")])


@pytest.mark.parametrize("option", [[], ["--option", "lin_path=/no/such/lin.pth"], ["--option", "net=squeeze"]])
def test_evaluate_refuses_a_preset_it_cannot_prepare_before_any_work(tmp_path, capsys, option):
    """A preset's missing weight file or bad option is a usage error (exit 2), found before any image is read
    and before the results folder exists."""
    from .helpers import run_cli

    write_image(tmp_path / "gt" / "a.png", np.zeros((32, 32, 3)))
    write_image(tmp_path / "pred" / "a.png", np.zeros((32, 32, 3)))
    code, err = run_cli(evaluate_cli.main, [str(tmp_path / "pred"), str(tmp_path / "gt"), "--preset", "lpips", *option],
                        capsys)
    assert code == 2 and len(err) == 1 and "lpips" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "pred_eval").exists()


def test_evaluate_refuses_an_image_smaller_than_its_preset_scores_before_any_work(tmp_path, capsys):
    from .helpers import run_cli

    write_image(tmp_path / "pred" / "a.png", np.zeros((120, 120, 3)))
    write_image(tmp_path / "pred" / "b.png", np.zeros((95, 400, 3)))
    code, err = run_cli(evaluate_cli.main, [str(tmp_path / "pred"), "--preset", "niqe"], capsys)
    assert code == 2 and len(err) == 1 and "b.png" in err[0] and "96" in err[0]
    assert not (tmp_path / "pred_eval").exists()


def test_check_dataset_reports_counts_and_problems(tmp_path, capsys):
    check = load_script("scripts/check_dataset")
    for n in (1, 2):
        write_image(tmp_path / f"rain-{n}.png", np.zeros((8, 8, 3)))
        write_image(tmp_path / f"norain-{n}.png", np.zeros((8, 8 if n == 1 else 9, 3)))
    assert check.main([str(tmp_path), "--type", "Rain"]) == 1
    out = capsys.readouterr().out
    assert "2 samples, 1 problem(s)" in out and "differ in size" in out
    assert check.main([str(tmp_path / "nothing"), "--type", "LOL"]) == 1


def test_test_script_scores_unpaired_folders_with_niqe(tmp_path, small_model, capsys):
    _, cfg, weights = small_model
    write_image(tmp_path / "dicm" / "p.png", np.random.default_rng(0).random((100, 100, 3)))
    test_script = test_cli
    args = ["-c", cfg, "--weights", weights, "data.val.type=ImageFolder", f"data.val.root={tmp_path / 'dicm'}",
            "--preset", "niqe", "--out", str(tmp_path / "res")]
    mean = test_script.main(args)
    assert set(mean) == {"niqe", "input_niqe"}
    assert (tmp_path / "res" / "comparison.png").exists()
    with pytest.raises(DataError, match="ImageFolder has no targets, which preset ffa_rgb needs: use a no-reference"):
        test_script.main(args[:-4] + ["--out", str(tmp_path / "res2")])  # a full-reference preset without targets


def test_demo_configs_for_every_task_load():
    from hdm.config import load_config
    for task, preset in (("hdm_demo", "ffa_rgb"), ("hdm_demo_rain", "matlab_y_uint8"), ("hdm_demo_lowlight", "lol_rgb")):
        assert load_config(os.path.join(ROOT, "configs", "demo", task + ".yaml"))["eval"]["preset"] == preset


def test_self_ensemble_is_the_mean_of_the_eight_transforms(tmp_path):
    from hdm.inference import SelfEnsemble

    class Asymmetric(torch.nn.Module):  # depends on position: its outputs differ per transform
        extra_inputs = ()

        def forward(self, x):
            ramp = torch.linspace(0, 1, x.shape[-1]).view(1, 1, 1, -1)
            return x * ramp
    x = torch.rand(1, 3, 6, 10)
    got = SelfEnsemble(Asymmetric())(x)
    outs = []
    for k in range(4):
        for flip in (False, True):
            y = torch.rot90(x.flip(-1) if flip else x, k, dims=(-2, -1))
            y = torch.rot90(Asymmetric()(y), -k, dims=(-2, -1))
            outs.append(y.flip(-1) if flip else y)
    assert torch.allclose(got, torch.stack(outs).mean(0), atol=1e-7) and got.shape == x.shape
    assert not torch.allclose(got, Asymmetric()(x))
    # an equivariant model is unchanged; restore(ensemble=True) gives the wrapper's output, tiled or not
    model = HDM(dim=8, groups=1, blocks_per_group=1).eval()
    img = torch.rand(1, 3, 40, 48)
    whole = restore(model, img, ensemble=True)
    assert torch.allclose(whole, SelfEnsemble(model)(img).clamp(0, 1), atol=1e-6)
    assert restore(model, img, tile=32, overlap=8, ensemble=True).shape == img.shape


def test_test_and_predict_with_ensemble(tmp_path):
    import json
    write_image(tmp_path / "hazy" / "a.png", np.random.default_rng(1).random((32, 40, 3)))
    write_image(tmp_path / "clear" / "a.png", np.random.default_rng(2).random((32, 40, 3)))
    cfg = {"model": {"type": "DCP"}, "data": {"test": {"type": "PairedFolder", "lq_dir": str(tmp_path / "hazy"),
                                                       "gt_dir": str(tmp_path / "clear")}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    mean = test_cli.main(["-c", str(tmp_path / "c.yaml"), "--ensemble", "--preset", "ciede2000", "--out", str(tmp_path / "r")])
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["ensemble"] and meta["preset"] == "ciede2000" and mean["ciede2000"] > 0
    assert predict([str(tmp_path / "hazy"), str(tmp_path / "out"), "-c", str(tmp_path / "c.yaml"), "--ensemble"]) == 0
    assert read_image(tmp_path / "out" / "a.png").shape == (32, 40, 3)


def test_several_presets_in_one_pass_and_a_labelled_comparison(tmp_path, small_model):
    import csv as csv_module
    import json

    from hdm.results import HEADERS, comparison_grid
    model, cfg, weights = small_model
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        write_image(tmp_path / "lq" / f"{name}.png", rng.random((40, 48, 3)))
        write_image(tmp_path / "gt" / f"{name}.png", rng.random((40, 48, 3)))
    data = ["data.test.type=PairedFolder", f"data.test.lq_dir={tmp_path / 'lq'}", f"data.test.gt_dir={tmp_path / 'gt'}"]
    out = tmp_path / "res"
    mean = test_cli.main(["-c", cfg, *data, "--weights", weights, "--preset", "ffa_rgb", "matlab_y_uint8", "ciede2000",
                          "--out", str(out)])
    assert {"ffa_rgb.psnr", "ffa_rgb.ssim", "matlab_y_uint8.psnr", "matlab_y_uint8.ssim", "ciede2000.ciede2000",
            "input_ffa_rgb.psnr"} <= set(mean)
    single = test_cli.main(["-c", cfg, *data, "--weights", weights, "--preset", "matlab_y_uint8", "--out",
                            str(tmp_path / "one")])
    assert mean["matlab_y_uint8.psnr"] == single["psnr"]  # the same numbers as a pass of its own
    with open(out / "per_image.csv") as f:
        header = next(csv_module.reader(f))
    assert header[:3] == ["name", "ffa_rgb.psnr", "ffa_rgb.ssim"]
    summary = (out / "summary.md").read_text()
    assert "| method | ffa_rgb.psnr | ffa_rgb.ssim | matlab_y_uint8.psnr" in summary and "metric presets `ffa_rgb`" in summary
    assert json.loads((out / "meta.json").read_text())["presets"] == {"ffa_rgb": {}, "matlab_y_uint8": {}, "ciede2000": {}}
    # the figure: a header strip, then per image its row and a caption (text, so dark pixels in the strips)
    images = [np.full((20, 30, 3), v) for v in (0.2, 0.5, 0.8)]
    plain = comparison_grid([images], height=40)
    labelled = comparison_grid([images], ["x: psnr 20.00"], height=40)
    assert plain.shape[0] == 32 + 40 + 4 and labelled.shape[0] == 32 + 40 + 28 + 4
    assert plain.shape[1] == labelled.shape[1] >= 180  # 60-pixel columns, wider where a label needs it
    assert plain[:32].min() < 0.5 and labelled[32 + 40:32 + 68].min() < 0.5 and len(HEADERS) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.sampled_from("abcxyz_.0123456789 :"), min_size=1, max_size=40), min_size=1, max_size=12),
       st.integers(30, 900))
def test_a_caption_is_wrapped_onto_lines_that_fit_never_cut(parts, width):
    """Every score of a caption reaches the figure (three presets' scores did not fit one line): the lines
    hold all of it, in order, and each fits the figure; a part too long for a line alone (a long file
    name) is cut between characters, never beyond the edge."""
    import cv2

    from hdm.results import _wrapped, drawable

    text = ", ".join(parts)
    lines = _wrapped(text, width, 28)
    assert "".join(lines).replace(", ", "") == drawable(text).replace(", ", "")
    if ", ".join(lines) != drawable(text):  # cut inside a part only when the part alone does not fit
        assert any(cv2.getTextSize(p, cv2.FONT_HERSHEY_SIMPLEX, 28 / 40, 1)[0][0] + 8 > width for p in parts)
    for line in lines:
        assert cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, 28 / 40, 1)[0][0] + 8 <= width


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 400), st.integers(1, 400), st.integers(1, 3))
def test_every_header_label_fits_its_column(h, w, columns):
    """Narrow images get white margins up to their label's width: the column headers never overlap."""
    import cv2

    from hdm.results import HEADERS, comparison_grid

    figure = comparison_grid([[np.full((h, w, 3), 0.5)] * columns], ["a_long_file_name_without_breaks.png: psnr 20.00"],
                             height=40)
    labels = [cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 32 / 40, 1)[0][0] + 8 for label in HEADERS[:columns]]
    assert figure.shape[1] >= max(sum(labels), columns * round(w * 40 / h))


def test_a_long_caption_makes_its_strip_taller():
    from hdm.results import caption, comparison_grid

    images = [np.full((20, 30, 3), v) for v in (0.2, 0.5, 0.8)]
    row = {"name": "x", **{f"{p}.{m}": 20.0 for p in ("ffa_rgb", "matlab_y_uint8", "basicsr") for m in ("psnr", "ssim")}}
    figure = comparison_grid([images], [caption(row)], height=40)
    assert figure.shape[0] > 32 + 40 + 28 + 4  # more than one caption line under the 180-pixel row


# --- scripts/convert_official.py: the output never replaces the released file; an existing one only with --overwrite

def released_aecrnet(path):
    """A file laid out as AECR-Net's release (random values), at `path`."""
    gen = torch.Generator().manual_seed(0)
    torch.save({"model": {"module." + k: torch.randn(*s, generator=gen) for k, s in released_listing("aecrnet")},
                "optimizer": {}, "step": 1000}, path)


def test_convert_official_never_replaces_the_release_and_replaces_an_output_only_with_overwrite(tmp_path, capsys):
    convert = load_script("scripts/convert_official").main
    (tmp_path / "rel").mkdir()
    src = tmp_path / "rel" / "x.pk"
    released_aecrnet(src)
    before = src.read_bytes()
    for extra in ([], ["--overwrite"]):
        code, err = run_cli(convert, ["--model", "aecrnet", str(src), str(tmp_path / "rel" / "." / "x.pk"), *extra], capsys)
        assert code == 2 and err == [f"error: {tmp_path / 'rel' / '.' / 'x.pk'}: an output would replace an input; "
                                     f"write to another folder"]
    assert src.read_bytes() == before
    dst = tmp_path / "out.pth"
    dst.write_bytes(b"an earlier output")
    code, err = run_cli(convert, ["--model", "aecrnet", str(src), str(dst)], capsys)
    assert code == 2 and len(err) == 1 and "exists" in err[0] and "--overwrite" in err[0]
    assert dst.read_bytes() == b"an earlier output"
    code, err = run_cli(convert, ["--model", "aecrnet", str(src), str(dst), "--overwrite"], capsys)
    assert code == 0 and err == []
    assert set(torch.load(dst, weights_only=True)) == {"model", "model_config", "source"}


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(SPELLINGS), overwrite=st.booleans())
def test_convert_official_refuses_the_release_however_the_output_is_written(tmp_path, capsys, how, overwrite):
    """The output spelled as the source any way (./, //, absolute, relative, a symlink, a hard link, ../):
    refused before the release is read, with or without --overwrite."""
    convert = load_script("scripts/convert_official").main
    src = tmp_path / "rel" / "x.pk"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(b"the authors' release: never read, never replaced")
    dst = spell(str(src), how, tmp_path)
    code, err = run_cli(convert, [str(src), dst] + ["--overwrite"] * overwrite, capsys)
    assert code == 2 and err == [f"error: {dst}: an output would replace an input; write to another folder"]
    assert src.read_bytes() == b"the authors' release: never read, never replaced"


def test_test_script_puts_results_beside_a_run_only_for_a_runs_weights(tmp_path, small_model):
    """Converted release weights in a folder named checkpoints/ (where the docs put them) are not a run's:
    their results go to work_dir/results/<name>/, neither to the parent of checkpoints/ nor into the
    config's run folder, even when that folder holds a run."""
    import shutil
    _, cfg, weights = small_model
    write_image(tmp_path / "lq" / "a.png", np.random.default_rng(1).random((24, 32, 3)))
    write_image(tmp_path / "gt" / "a.png", np.random.default_rng(2).random((24, 32, 3)))
    data = ["data.test.type=PairedFolder", f"data.test.lq_dir={tmp_path / 'lq'}", f"data.test.gt_dir={tmp_path / 'gt'}",
            f"work_dir={tmp_path / 'runs'}", "name=mine"]
    release = tmp_path / "repo" / "checkpoints" / "hdm_sots_release.pth"
    release.parent.mkdir(parents=True)
    shutil.copy(weights, release)
    (tmp_path / "runs" / "mine" / "checkpoints").mkdir(parents=True)  # the config's own run
    (tmp_path / "runs" / "mine" / "config.yaml").write_text(open(cfg).read())
    test_cli.main(["-c", cfg, *data, "--weights", str(release)])
    assert not (tmp_path / "repo" / "test").exists() and not (tmp_path / "runs" / "mine" / "test").exists()
    results = tmp_path / "runs" / "results" / "mine"
    assert [p.name.split("_")[:3] for p in results.iterdir()] == [["hdm", "sots", "release"]]
    run = tmp_path / "elsewhere" / "a_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(open(cfg).read())
    shutil.copy(weights, run / "checkpoints" / "iter_2.pth")
    test_cli.main(["-c", cfg, *data, "--weights", str(run / "checkpoints" / "iter_2.pth")])
    assert len(list((run / "test").iterdir())) == 1 and len(list(results.iterdir())) == 1


# --- every tool's bad arguments: exit code 2, one line naming the option, before any work (nothing written)

@pytest.fixture(scope="module")
def bad_args_files(tmp_path_factory):
    """What the bad-argument cases name: a small HybridNet's weights and config, a config they do not fit,
    a Discriminator config, run checkpoints (data.val gone; weights that do not fit), a file that is no
    checkpoint, clean images, pairs of one size and pairs that differ, an empty folder."""
    from hdm.config import load_config
    from hdm.models import HybridNet

    root = tmp_path_factory.mktemp("bad_args")
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(root / "clean" / f"{i}.png", rng.random((40, 48, 3)))
        write_image(root / "hazy" / f"{i}.png", rng.random((40, 48, 3)))
        write_image(root / "clear" / f"{i}.png", rng.random((40, 48 + i, 3)))
    (root / "empty").mkdir()
    model = {"type": "HybridNet", "width": 4, "ms_channels": 2}
    state = HybridNet(width=4, ms_channels=2).state_dict()
    atomic_save({"model": state}, root / "w.pth")
    (root / "bad.pth").write_bytes(b"not a checkpoint")
    for name, cfg in (("c", {"model": model}), ("wider", {"model": {**model, "width": 8}}),
                      ("d", {"model": {"type": "Discriminator"}}),
                      ("val_gone", {"model": model, "data": {"val": {"type": "PairedFolder", "lq_dir": str(root / "gone"),
                                                                "gt_dir": str(root / "gone")}}})):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    run_cfg = load_config(str(root / "val_gone.yaml"))
    atomic_save({"model": state, "config": run_cfg}, root / "run_gone.pth")
    run_cfg["model"]["width"] = 8
    atomic_save({"model": state, "config": run_cfg}, root / "run_wider.pth")
    return {p.stem if p.is_file() else p.name: str(p) for p in root.iterdir()} | {"root": str(root)}


@pytest.fixture(scope="module")
def tools():
    """{name: main} of the tools the bad-argument cases run."""
    from hdm.cli import serve as serve_cli

    scripts = ("lowlight_protocol", "tune_pfdcp", "model_report", "benchmark", "bench_dataset_check", "launch_stress")
    return {"evaluate": evaluate_cli.main, "serve": serve_cli.main,
            **{name: load_script(f"scripts/{name}").main for name in scripts}}


def assert_refused_before_work(main, argv, words, root, capsys):
    """The tool exits with 2 and one line on stderr holding `words` (no traceback), and writes nothing under root."""
    def tree():
        return sorted(os.path.join(folder, name) for folder, dirs, files in os.walk(root) for name in dirs + files)

    before = tree()
    code, err = run_cli(main, argv, capsys)
    assert code == 2 and len(err) == 1, (argv, code, err)
    assert all(w in err[0] for w in words) and "Traceback" not in err[0], (argv, err)
    assert tree() == before, argv


LOWLIGHT = ["-c", "{c}", "--weights", "{w}", "--clean", "{clean}"]
TUNE = ["PairedFolder", "lq_dir={hazy}", "gt_dir={hazy}"]
BENCH = ["--tiny", "--out", "{root}/bench"]
BAD_ARGUMENTS = [  # (tool, arguments ({name}: bad_args_files), words of its one error line)
    ("lowlight_protocol", ["-c", "{c}", "--weights", "{root}/nope.pth", "--clean", "{clean}"], ["--weights", "nope.pth"]),
    ("lowlight_protocol", ["-c", "{c}", "--weights", "{bad}", "--clean", "{clean}"], ["--weights", "not a readable"]),
    ("lowlight_protocol", ["-c", "{wider}", "--weights", "{w}", "--clean", "{clean}"], ["--weights", "do not fit"]),
    ("lowlight_protocol", ["-c", "{c}", "--weights", "{w}", "--clean", "{root}/nope"], ["--clean", "no such folder"]),
    ("lowlight_protocol", ["-c", "{c}", "--weights", "{w}", "--clean", "{empty}"], ["--clean", "found none"]),
    ("lowlight_protocol", [*LOWLIGHT, "--gamma", "101"], ["--gamma", "100"]),
    ("lowlight_protocol", [*LOWLIGHT, "--out", "{clean}/results"], ["--out"]),
    ("lowlight_protocol", [*LOWLIGHT, "--out", "{root}"], ["--out"]),
    ("tune_pfdcp", ["PairedFolder", "lq_dir={hazy}", "gt_dir={clear}"], ["PairedFolder", "differ in size"]),
    ("tune_pfdcp", [*TUNE, "--preset", "nope"], ["--preset", "nope"]),
    ("tune_pfdcp", [*TUNE, "--preset", "niqe"], ["--preset", "niqe"]),  # no PSNR, SSIM
    ("tune_pfdcp", [*TUNE, "--device", "tpu"], ["--device", "tpu"]),
    ("tune_pfdcp", ["PairedFolder", "lq_dir={hazy}", "gt_dir"], ["key=value", "gt_dir"]),
    ("tune_pfdcp", ["PairedFolder", "lq_dir={hazy}", "gt_folder={hazy}"], ["PairedFolder", "gt_folder"]),
    ("tune_pfdcp", ["PairedFolder", "lq_dir={root}/nope", "gt_dir={hazy}"], ["PairedFolder", "nope"]),
    ("tune_pfdcp", ["ImageFolder", "root={hazy}"], ["ImageFolder", "no targets"]),
    ("model_report", ["-c", "{d}", "--size", "64", "64"], ["--size", "128"]),  # the Discriminator's MIN_INPUT_SIDE
    ("benchmark", [*BENCH, "--device", "tpu"], ["--device", "tpu"]),
    ("benchmark", [*BENCH, "--quick"], ["--quick", "--tiny"]),
    ("benchmark", [*BENCH, "--trained", "{w}", "{root}/nope.pth"], ["--trained", "nope.pth"]),
    ("benchmark", [*BENCH, "--trained", "{bad}"], ["--trained", "bad.pth"]),
    ("benchmark", [*BENCH, "--trained", "{w}"], ["--trained", "w.pth", "run config"]),
    ("benchmark", [*BENCH, "--trained", "{run_gone}"], ["--trained", "run_gone.pth", "gone"]),
    ("benchmark", [*BENCH, "--trained", "{run_wider}"], ["--trained", "run_wider.pth", "do not fit"]),
    ("benchmark", [*BENCH, "--sections", "conv", "--trained", "{w}"], ["--trained", "tiled_trained"]),
    ("benchmark", ["--tiny", "--out", "{root}/nope/bench"], ["--out", "nope"]),
    ("evaluate", ["{hazy}", "--preset", "loe"], ["--preset", "loe", "degraded input"]),
    ("serve", ["{c}", "--device", "tpu"], ["--device", "tpu"]),
    pytest.param("benchmark", [*BENCH, "--device", "cuda"], ["--device", "CUDA"],
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
]


@pytest.mark.parametrize("tool,argv,words", BAD_ARGUMENTS)
def test_a_bad_argument_of_any_tool_is_one_line_and_exit_2_before_any_work(bad_args_files, tools, capsys, tool, argv,
                                                                             words):
    argv = [a.format(**bad_args_files) for a in argv]
    assert_refused_before_work(tools[tool], argv, words, bad_args_files["root"], capsys)


BAD_NUMBERS = {  # what hdm.cli's type= helpers refuse, as a command line spells it
    "positive_int": st.integers(max_value=0).map(str) | st.sampled_from(["1.5", "1e3", "x", ""]),
    "non_negative_int": st.integers(max_value=-1).map(str) | st.sampled_from(["0.5", "x", ""]),
    "positive_float": st.floats(max_value=0).map(str) | st.sampled_from(["nan", "inf", "x", ""]),
    "fraction": st.floats().filter(lambda v: not 0 <= v <= 1).map(str) | st.sampled_from(["x", ""]),
}
NUMBER_OPTIONS = [  # (tool, arguments, option, kind); arguments valid without the option
    ("lowlight_protocol", LOWLIGHT, "--gamma", "positive_float"),
    ("lowlight_protocol", LOWLIGHT, "--noise", "fraction"),
    ("lowlight_protocol", LOWLIGHT, "--seed", "non_negative_int"),
    ("tune_pfdcp", TUNE, "--limit", "positive_int"),
    ("tune_pfdcp", TUNE, "--weights", "fraction"),
    ("model_report", ["-c", "{c}"], "--size", "positive_int"),
    ("bench_dataset_check", ["--scenes", "1", "--repeat", "1", "--keep", "{root}/its"], "--scenes", "positive_int"),
    ("bench_dataset_check", ["--scenes", "1", "--repeat", "1", "--keep", "{root}/its"], "--repeat", "positive_int"),
    ("launch_stress", ["--launches", "1", "--timeout", "1"], "--launches", "positive_int"),
    ("launch_stress", ["--launches", "1", "--timeout", "1"], "--timeout", "positive_float"),
]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(NUMBER_OPTIONS).flatmap(lambda c: st.tuples(st.just(c), BAD_NUMBERS[c[3]])))
def test_a_number_out_of_its_options_range_is_one_line_and_exit_2_before_any_work(bad_args_files, tools, capsys, case):
    (tool, argv, option, _), value = case
    argv = [a.format(**bad_args_files) for a in argv]
    argv += [option, value, "8"] if option == "--size" else [f"{option}={value}"]  # --size H W
    assert_refused_before_work(tools[tool], argv, [option, "expected"], bad_args_files["root"], capsys)
