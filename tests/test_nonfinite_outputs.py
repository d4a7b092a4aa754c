"""Non-finite outputs are failures: never written as an image, never counted as restored, never scored
as nan with exit code 0; one line naming the image and the weights, exit code 1, the other images go on."""
import os

import numpy as np
import pytest
import torch
import yaml

from hdm.cli import predict as predict_cli
from hdm.cli import test as test_cli
from hdm.data import PairedFolder
from hdm.errors import NonFiniteOutput
from hdm.evaluation import evaluate
from hdm.image_io import write_image
from hdm.inference import clamp_finite, restore
from hdm.metrics import get_metric
from hdm.models import build_model
from tests.helpers import hazy_photo, run_cli

TINY = {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}


class BrokenOnBright(torch.nn.Module):
    """The identity, except NaN (or +inf) for images brighter than 0.5 on average."""
    extra_inputs = ()

    def __init__(self, value=float("nan")):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.where(x.mean() > 0.5, torch.full_like(x, self.value), x)


@pytest.fixture
def broken_weights(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    torch.save({"model": model.state_dict(), "config": {"model": TINY}}, tmp_path / "broken.pth")
    return str(tmp_path / "broken.pth")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_clamp_never_hides_an_infinity(value):
    out = torch.rand(1, 3, 8, 8)
    out[0, 1, 2, 3] = value
    with pytest.raises(NonFiniteOutput, match="1 of 192 output values"):
        clamp_finite(out)
    with pytest.raises(NonFiniteOutput):
        restore(BrokenOnBright(value), torch.full((1, 3, 16, 16), 0.9), tile=8, overlap=4)  # tiles too


def test_evaluate_scores_the_others_then_names_the_broken(tmp_path):
    for name, level in (("dark", 0.2), ("bright", 0.8), ("dim", 0.3)):
        write_image(tmp_path / "lq" / f"{name}.png", np.full((8, 8, 3), level))
        write_image(tmp_path / "gt" / f"{name}.png", np.full((8, 8, 3), level))
    dataset = PairedFolder(str(tmp_path / "lq"), str(tmp_path / "gt"))
    seen = []

    def metric(out, gt, lq=None):
        seen.append(float(out.mean()))
        return get_metric("ffa_rgb")(out, gt, lq=lq)
    with pytest.raises(NonFiniteOutput, match=r"1 of 3 images gave NaN or infinite outputs \(.*bright.png\)"):
        evaluate(BrokenOnBright(float("inf")), dataset, metric, torch.device("cpu"))
    assert len(seen) == 4 and all(np.isfinite(seen))  # dark and dim scored (output and input each), bright not


def test_predict_writes_nothing_for_nan_outputs_and_says_which_weights(tmp_path, broken_weights, capsys):
    img, _ = hazy_photo("coffee", size=(40, 52))
    write_image(tmp_path / "in" / "a.png", img)
    write_image(tmp_path / "in" / "b.png", img[::-1])
    code, err = run_cli(predict_cli.main, [str(tmp_path / "in"), str(tmp_path / "out"), "--weights", broken_weights],
                        capsys)
    assert code == 1 and len(err) == 2
    assert all("output values are NaN or infinite with" in line and "broken.pth: nothing written" in line for line in err)
    assert not (tmp_path / "out").exists()  # nothing written, and no empty folder


def test_restore_all_goes_on_after_a_broken_image(tmp_path, capsys):
    files = []
    for name, level in (("a", 0.2), ("b", 0.8), ("c", 0.3)):
        write_image(tmp_path / "in" / f"{name}.png", np.full((8, 8, 3), level))
        files.append(str(tmp_path / "in" / f"{name}.png"))
    plan, _ = predict_cli.plan_outputs(files, str(tmp_path / "out"))
    model = BrokenOnBright()

    def restore_one(path):
        x = torch.from_numpy(predict_cli.read_rgb(path)).permute(2, 0, 1)[None].float() / 255
        return {"": model(x)[0].permute(1, 2, 0)}
    assert predict_cli.restore_all(files, plan, str(tmp_path / "out"), restore_one, "w.pth") == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "b.png: 192 of 192 output values are NaN or infinite with w.pth" in captured.err
    assert "restored 2 of 3 image(s)" in captured.out
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "c.png"]


def test_test_py_never_scores_nan(tmp_path, broken_weights, capsys):
    img, _ = hazy_photo("coffee", size=(40, 52))
    write_image(tmp_path / "lq" / "a.png", img)
    write_image(tmp_path / "gt" / "a.png", img)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": TINY, "data": {"test": {"type": "PairedFolder", "lq_dir": str(tmp_path / "lq"),
                                                                    "gt_dir": str(tmp_path / "gt")}}}))
    code, err = run_cli(test_cli.main, ["-c", str(cfg), "--weights", broken_weights, "--out", str(tmp_path / "res")],
                        capsys)
    assert code == 1 and len(err) == 1 and "broken.pth: 1 of 1 images gave NaN or infinite outputs" in err[0]
    assert "nothing was scored or written" in err[0]
    assert not os.path.exists(tmp_path / "res" / "summary.md") and not os.path.exists(tmp_path / "res" / "meta.json")


@pytest.mark.parametrize("black", ["all", "one_channel"])
def test_dcp_on_an_image_black_in_a_channel_is_finite(black):
    """An image with no light in a channel has atmospheric light 0 there: I / A must not be 0 / 0."""
    from hdm.deploy.dcp_masks import A_MIN, region_masks
    from hdm.ops import dcp

    x = torch.zeros(1, 3, 40, 48) if black == "all" else torch.rand(1, 3, 40, 48) * torch.tensor([1.0, 0, 1]).view(1, 3, 1, 1)
    for kind in ("DCP", "PFDCP"):
        out = build_model({"type": kind})(x)
        assert torch.isfinite(out).all()
    if black == "all":
        assert torch.equal(build_model({"type": "DCP"})(x), x)  # nothing to dehaze
    assert A_MIN == dcp.A_MIN and np.isfinite(region_masks(x.numpy())).all()
    assert torch.isfinite(build_model(TINY)(x)).all()


def test_a_score_is_never_nan(tmp_path, capsys):
    """NIQE of an image without structure is undefined: one line naming the image, exit code 1, no table."""
    from hdm.cli import evaluate as evaluate_cli

    write_image(tmp_path / "flat" / "black.png", np.zeros((128, 128, 3)))
    code, err = run_cli(evaluate_cli.main, [str(tmp_path / "flat"), "--preset", "niqe"], capsys)
    assert code == 1 and len(err) == 1 and "black.png: niqe gives no niqe for it" in err[0]
    assert not os.path.exists(tmp_path / "flat_eval" / "summary.md")


@pytest.mark.parametrize("option, said", [("crop_border=-5", "crop_border: expected an integer in [0, 64]"),
                                          ("crop_border=2.5", "crop_border: expected an integer"),
                                          ("crop_border=.nan", "not a finite number"),
                                          ("y=2", "y: expected true or false")])
def test_metric_options_are_checked_before_work(tmp_path, capsys, option, said):
    from hdm.cli import evaluate as evaluate_cli

    for folder in ("pred", "gt"):
        write_image(tmp_path / folder / "a.png", np.full((16, 16, 3), 0.5))
    code, err = run_cli(evaluate_cli.main, [str(tmp_path / "pred"), str(tmp_path / "gt"), "--preset", "basicsr",
                                            "--option", option], capsys)
    assert code == 2 and len(err) == 1 and said in err[0]
    assert not os.path.exists(tmp_path / "pred_eval")
