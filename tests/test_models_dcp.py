import os

import numpy as np
import pytest
import torch
import yaml

from hdm.cli import test as test_cli
from hdm.image_io import write_image
from hdm.metrics import psnr_rgb
from hdm.models import DCP, PFDCP, count_parameters

from .helpers import load_script

AIRLIGHT = torch.tensor([0.85, 0.9, 0.95], dtype=torch.float64)


def scene(t_kind, size=(120, 160), seed=0):
    """A scene where the dark channel prior holds (every 15 x 15 patch has a zero channel), hazed with a
    known A and t; the top rows are sky-like (t = 0: the pixels equal A)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    clean = torch.rand(1, 3, h, w, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    zero = torch.randint(0, 3, (h, w), generator=gen)
    clean[0].scatter_(0, zero.unsqueeze(0), 0.0)
    yy = torch.linspace(0, 1, h, dtype=torch.float64).view(1, 1, h, 1).expand(1, 1, h, w)
    t = torch.full_like(yy, 0.6) if t_kind == "constant" else 0.3 + 0.6 * yy
    t = t.clone()
    t[..., :12, :] = 0.0
    hazy = clean * t + AIRLIGHT.view(1, 3, 1, 1) * (1 - t)
    return hazy, clean, t


@pytest.mark.parametrize("t_kind", ["constant", "smooth"])
def test_dcp_recovers_airlight_and_scene(t_kind):
    hazy, clean, t = scene(t_kind)
    model = DCP()
    assert torch.allclose(model.atmosphere(hazy)[0], AIRLIGHT, atol=1e-6)
    rows = slice(24, None)  # below the sky, where the scene is defined
    out = model(hazy)
    assert psnr_rgb(out[..., rows, :], clean[..., rows, :]).item() > 20.0
    assert psnr_rgb(out[..., rows, :], clean[..., rows, :]).item() > psnr_rgb(hazy[..., rows, :], clean[..., rows, :]).item() + 5
    exact = DCP(omega=1.0, radius=2)(hazy)  # no haze kept, little smoothing: close to the true scene
    assert psnr_rgb(exact[..., rows, :], clean[..., rows, :]).item() > 25.0


def test_pfdcp_with_one_level_is_dcp_and_pyramid_depth():
    hazy, _, _ = scene("smooth")
    assert torch.equal(PFDCP(max_levels=1, weight=0.7)(hazy), DCP()(hazy))
    levels = PFDCP().pyramid(hazy)
    assert [tuple(item.shape[-2:]) for item in levels] == [(120, 160), (60, 80), (30, 40), (15, 20)]
    assert torch.equal(levels[1], hazy[..., ::2, ::2])


def test_pfdcp_fuses_levels():
    hazy, clean, _ = scene("smooth")
    pf = PFDCP(weight=0.5)
    a, t = pf.fused_transmission(hazy)
    assert torch.allclose(a[0], AIRLIGHT, atol=1e-6)
    assert not torch.equal(PFDCP(weight=0.0)(hazy), PFDCP(weight=0.9)(hazy))
    assert t.shape == (1, 1, 120, 160)


@pytest.mark.parametrize("model", [DCP(), PFDCP(weight=0.4)], ids=["dcp", "pfdcp"])
def test_batch_equals_per_image_and_odd_sizes(model):
    imgs = torch.cat([scene("smooth", seed=s)[0] for s in range(3)]).float()
    batch = model(imgs)
    for i in range(3):
        assert torch.allclose(batch[i:i + 1], model(imgs[i:i + 1]), atol=1e-6)
    odd = model(torch.rand(2, 3, 37, 51))
    assert odd.shape == (2, 3, 37, 51) and odd.dtype == torch.float32 and torch.isfinite(odd).all()
    assert count_parameters(model) == 0


def test_maps_for_figures():
    hazy, _, _ = scene("smooth")
    maps = PFDCP().maps(hazy)
    assert set(maps) == {"dark_channel", "transmission"} and maps["transmission"].shape == (1, 1, 120, 160)


def test_test_and_predict_need_no_weights_for_baselines(tmp_path):
    hazy, clean, _ = scene("smooth")
    to_img = lambda x: x[0].permute(1, 2, 0).numpy()  # noqa: E731
    write_image(tmp_path / "hazy" / "a.png", to_img(hazy))
    write_image(tmp_path / "clear" / "a.png", to_img(clean))
    cfg = {"model": {"type": "DCP"},
           "data": {"val": {"type": "PairedFolder", "lq_dir": str(tmp_path / "hazy"), "gt_dir": str(tmp_path / "clear")}}}
    (tmp_path / "dcp.yaml").write_text(yaml.safe_dump(cfg))
    mean = test_cli.main(["-c", str(tmp_path / "dcp.yaml"), "--out", str(tmp_path / "res")])
    assert mean["psnr"] > mean["input_psnr"]
    from hdm.cli.predict import main as predict
    assert predict([str(tmp_path / "hazy"), str(tmp_path / "out"), "-c", str(tmp_path / "dcp.yaml"), "--save-maps"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "a_dark_channel.png", "a_transmission.png"]


def test_hdm_maps_include_regions(tmp_path):
    from hdm.inference import colour_maps
    from hdm.models import HDM
    maps = HDM(dim=8, groups=1, blocks_per_group=1).maps(torch.rand(1, 3, 30, 42))
    assert maps["regions"].shape == (1, 5, 8, 11) and maps["transmission"].shape == (1, 1, 8, 11)
    coloured = colour_maps(maps, (30, 42))
    assert all(img.shape == (30, 42, 3) and img.dtype == np.uint8 for img in coloured.values())
    assert len(np.unique(coloured["regions"].reshape(-1, 3), axis=0)) <= 5


def test_tune_pfdcp_script(tmp_path):
    for i in range(2):
        hazy, clean, _ = scene("smooth", size=(64, 80), seed=i)
        write_image(tmp_path / "hazy" / f"{i}.png", hazy[0].permute(1, 2, 0).numpy())
        write_image(tmp_path / "clear" / f"{i}.png", clean[0].permute(1, 2, 0).numpy())
    best, results = load_script("scripts/tune_pfdcp").main(
        ["PairedFolder", f"lq_dir={tmp_path / 'hazy'}", f"gt_dir={tmp_path / 'clear'}", "--weights", "0.2", "0.8"])
    assert best in (0.2, 0.8) and results[best]["psnr"] == max(r["psnr"] for r in results.values())


def test_variant_configs_differ_from_the_default_as_their_comments_say():
    """dcp_sots_raw.yaml is the default without refinement (radius 0: a 1 x 1 guided-filter window
    returns the raw transmission exactly); dcp_sots_hdm_release.yaml changes only the window (61)."""
    from hdm.config import load_config
    from hdm.ops.dcp import transmission
    root = os.path.join(os.path.dirname(__file__), "..", "configs", "baselines")
    model = {name: load_config(os.path.join(root, f"{name}.yaml"))["model"]
             for name in ("dcp_sots", "dcp_sots_raw", "dcp_sots_hdm_release")}
    changed = lambda name: {k: v for k, v in model[name].items() if model["dcp_sots"][k] != v}  # noqa: E731
    assert changed("dcp_sots_raw") == {"radius": 0} and changed("dcp_sots_hdm_release") == {"radius": 30}
    hazy, _, _ = scene("smooth")
    raw, default = (DCP(**{k: v for k, v in model[name].items() if k != "type"}) for name in ("dcp_sots_raw", "dcp_sots"))
    a = default.atmosphere(hazy)
    t = transmission(hazy, a, 15, 0.95)
    assert torch.equal(raw.refined_transmission(hazy, a), t)
    assert not torch.allclose(default.refined_transmission(hazy, a), t, atol=1e-3)
