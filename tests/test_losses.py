import os

import pytest
import torch
import torch.nn.functional as F

from hdm.losses import ContrastiveLoss, PerceptualLoss, WeightedLosses
from hdm.losses.vgg import CONFIGS, FILES, VGGFeatures, layer_names


@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """Randomly initialised VGG16/19 state dicts with torchvision's names (features + a classifier)."""
    folder = tmp_path_factory.mktemp("vgg")
    paths = {}
    gen = torch.Generator().manual_seed(0)
    for arch, cfg in CONFIGS.items():
        state, i, in_ch = {}, 0, 3
        for v in cfg:
            if v == "M":
                i += 1
                continue
            state[f"features.{i}.weight"] = torch.randn(v, in_ch, 3, 3, generator=gen) * (2 / (9 * in_ch)) ** 0.5
            state[f"features.{i}.bias"] = torch.randn(v, generator=gen) * 0.01
            i, in_ch = i + 2, v
        state["classifier.0.weight"] = torch.zeros(4, 4)
        paths[arch] = str(folder / FILES[arch])
        torch.save(state, paths[arch])
    return paths


def test_layer_names_follow_torchvision_indices():
    names = layer_names("vgg19")
    assert [names.index(n) for n in ContrastiveLoss.LAYERS] == [1, 6, 11, 20, 29]
    assert layer_names("vgg16").index("relu3_3") == 15 and len(layer_names("vgg16")) == 31


def test_missing_weights_say_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth.*remove it from"):
        VGGFeatures("vgg19", ["relu1_1"])
    with pytest.raises(FileNotFoundError, match="losses.1 \\(Contrastive\\)"):
        WeightedLosses([{"type": "L1"}, {"type": "Contrastive"}])
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VGGFeatures("vgg16", ["relu1_2"], weights_path=str(tmp_path / "nope.pth"))


def test_weights_are_found_in_the_hub_cache(monkeypatch, tmp_path, vgg_files):
    os.makedirs(tmp_path / "checkpoints")
    os.symlink(vgg_files["vgg16"], tmp_path / "checkpoints" / FILES["vgg16"])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    vgg = VGGFeatures("vgg16", ["relu2_2"])
    assert torch.equal(vgg.features[0].weight, torch.load(vgg_files["vgg16"])["features.0.weight"])
    assert len(vgg.features) == 9 and not any(p.requires_grad for p in vgg.parameters())


@pytest.mark.parametrize("distance", ["l1", "mse"])
def test_perceptual_loss(vgg_files, distance):
    loss = PerceptualLoss("vgg16", weights_path=vgg_files["vgg16"], distance=distance)
    gt = torch.rand(2, 3, 32, 32)
    out = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(out, gt)
    value.backward()
    assert torch.isfinite(value) and value > 0 and out.grad.abs().sum() > 0
    assert loss(gt, gt).item() == 0.0


def vgg19_direct(state, x):
    """VGG19 features at relu1_1 ... relu5_1, written with F.conv2d on the state dict."""
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    feats, i = [], 0
    for v in CONFIGS["vgg19"]:
        if v == "M":
            x, i = F.max_pool2d(x, 2), i + 1
            continue
        x = F.relu(F.conv2d(x, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))
        if i + 1 in (1, 6, 11, 20, 29):
            feats.append(x)
        i += 2
        if i > 29:
            break
    return feats


def test_contrastive_ratio_matches_direct_computation(vgg_files):
    state = torch.load(vgg_files["vgg19"])
    out, gt, hazy = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    fa, fp, fn = vgg19_direct(state, out), vgg19_direct(state, gt), vgg19_direct(state, hazy)
    w = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    want = sum(wi * F.l1_loss(a, p) / (F.l1_loss(a, n) + 1e-7) for wi, a, p, n in zip(w, fa, fp, fn))
    got = ContrastiveLoss(weights_path=vgg_files["vgg19"])(out, gt, hazy)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    star = ContrastiveLoss(negatives=0, weights_path=vgg_files["vgg19"])(out, gt, hazy)
    assert star.item() == pytest.approx(sum(wi * F.l1_loss(a, p) for wi, a, p in zip(w, fa, fp)).item(), rel=1e-5)


def test_contrastive_gradients_and_minimum(vgg_files):
    loss = ContrastiveLoss(weights_path=vgg_files["vgg19"])
    gt, hazy = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = hazy.clone().requires_grad_()
    value = loss(out, gt, hazy)
    value.backward()
    assert torch.isfinite(value) and out.grad.abs().sum() > 0
    assert loss(gt, gt, hazy).item() == 0.0  # the restored image equals the clear one
    with pytest.raises(ValueError, match="hazy input"):
        loss(out, gt)


def test_one_to_r_negatives(vgg_files):
    loss = ContrastiveLoss(negatives=3, weights_path=vgg_files["vgg19"])
    idx = loss.negative_indices(5)
    assert idx.shape == (5, 3) and idx[:, 0].tolist() == list(range(5))
    assert all(len(set(row.tolist())) == 3 for row in idx)
    with pytest.raises(ValueError, match="batch of at least 3"):
        loss.negative_indices(2)
    out, gt, hazy = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    assert torch.isfinite(loss(out, gt, hazy))
    # with identical hazy images in the batch, 1:r equals 1:1
    same = hazy[:1].expand(4, -1, -1, -1)
    one = ContrastiveLoss(weights_path=vgg_files["vgg19"])
    assert loss(out, gt, same).item() == pytest.approx(one(out, gt, same).item(), rel=1e-6)


def test_weighted_losses_log_every_term(vgg_files):
    losses = WeightedLosses([{"type": "L1", "weight": 1.0},
                             {"type": "Perceptual", "weight": 0.04, "weights_path": vgg_files["vgg16"]},
                             {"type": "L1", "weight": 0.5}])
    out, gt = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    total, terms = losses(out, gt)
    assert list(terms) == ["L1", "Perceptual", "L1_2"]
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()))
    assert terms["L1_2"].item() == pytest.approx(0.5 * F.l1_loss(out, gt).item())
