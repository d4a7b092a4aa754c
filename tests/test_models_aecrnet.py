
import pytest
import torch
import torch.nn.functional as F

from hdm.models import AECRNet, build_model, count_parameters
from hdm.models.convert import convert_official_checkpoint, convert_state_dict
from hdm.models.fast_deconv import FastDeconv, isqrt_newton_schulz

from . import helpers


def released_listing():
    return helpers.released_listing("aecrnet")


def test_released_parameter_count_and_names():
    model = AECRNet()
    assert count_parameters(model) == 2_614_229
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == dict(released_listing())


@pytest.mark.parametrize("kwargs,delta", [({"dfe": False}, -652_315), ({"skip": "add"}, -2), ({"skip": "none"}, -2),
                                          ({"block_repeats": 3}, 0)])
def test_ablation_flags(kwargs, delta):
    model = AECRNet(**kwargs)
    assert count_parameters(model) == 2_614_229 + delta
    calls = []
    model.block.register_forward_hook(lambda *a: calls.append(1))
    model(torch.rand(1, 3, 16, 16))
    assert len(calls) == kwargs.get("block_repeats", 6)


@pytest.mark.parametrize("hw", [(37, 41), (17, 6), (1, 1)])
def test_any_input_size(hw):
    model = AECRNet(ngf=8).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, *hw)).shape == (1, 3, *hw)


def test_converter_maps_every_listed_key(tmp_path):
    gen = torch.Generator().manual_seed(0)
    released = {"module." + k: torch.randn(*s, generator=gen) for k, s in released_listing()}
    torch.save({"model": released, "optimizer": {}, "step": 1000}, tmp_path / "aecr.pk")
    assert convert_official_checkpoint(tmp_path / "aecr.pk", tmp_path / "out.pth", "aecrnet") == []
    ckpt = torch.load(tmp_path / "out.pth", weights_only=True)
    model = build_model(ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    for key, value in released.items():
        assert torch.equal(model.state_dict()[key[len("module."):]], value), key
    del released["module.deconv.running_deconv"]
    with pytest.raises(ValueError, match="missing \\['deconv.running_deconv'\\]"):
        convert_state_dict(released, "aecrnet")


def test_newton_schulz_inverse_square_root():
    a = torch.randn(27, 40, dtype=torch.float64)
    cov = a @ a.t() / 40 + 1e-2 * torch.eye(27, dtype=torch.float64)
    z = isqrt_newton_schulz(cov, 40)
    assert torch.allclose(z @ cov @ z, torch.eye(27, dtype=torch.float64), atol=1e-8)


def test_fast_deconv_whitens_patches_and_folds_into_the_conv():
    torch.manual_seed(0)
    layer = FastDeconv(3, 3, 3, padding=1, iterations=30, momentum=1.0).double()  # running stats = last batch
    x = torch.rand(2, 3, 24, 24, dtype=torch.float64) * torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64).view(1, 3, 1, 1)
    layer.train()
    y_train = layer(x)
    # the running matrix is (C + eps I)^(-1/2) of the sampled patches' covariance C
    cols = F.unfold(x, 3, padding=1, stride=3).transpose(1, 2).reshape(-1, 27)
    centred = cols - layer.running_mean
    cov = centred.t() @ centred / cols.shape[0] + layer.eps * torch.eye(27, dtype=torch.float64)
    d = layer.running_deconv
    assert torch.allclose(d @ cov @ d, torch.eye(27, dtype=torch.float64), atol=1e-6)
    # evaluation uses the running statistics: conv(W, D (patch - mean)) + b on every patch
    layer.eval()
    y_eval = layer(x)
    assert torch.allclose(y_eval, y_train, atol=1e-10)
    all_cols = F.unfold(x, 3, padding=1).transpose(1, 2)
    direct = ((all_cols - layer.running_mean) @ layer.running_deconv.t()) @ layer.weight.reshape(3, -1).t() + layer.bias
    assert torch.allclose(y_eval, direct.transpose(1, 2).reshape(2, 3, 24, 24), atol=1e-10)


def test_aecrnet_trains_through_the_engine_step():
    from hdm.data.sampler import EpochSampler
    from hdm.engine import train_step
    from hdm.losses import WeightedLosses
    from hdm.train_state import TrainState
    model = AECRNet(ngf=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 4)
    batch = {"lq": torch.rand(2, 3, 16, 16), "gt": torch.rand(2, 3, 16, 16)}
    before = model.deconv.running_mean.clone()
    state = TrainState(model, optimizer, scheduler, EpochSampler(2, 0, 2))
    logs = train_step(state, model, batch, WeightedLosses([{"type": "L1"}]), torch.device("cpu"))
    assert set(logs) == {"loss", "L1"} and not torch.equal(model.deconv.running_mean, before)
