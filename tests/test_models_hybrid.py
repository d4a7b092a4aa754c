import importlib.util
import os

import numpy as np
import pytest
import torch
import yaml

from hdm.config import ConfigError, load_config
from hdm.data import DarkenedFolder
from hdm.data.sampler import EpochSampler
from hdm.engine import gan_train_step
from hdm.image_io import write_image
from hdm.losses import WeightedLosses
from hdm.models import Discriminator, HybridNet, build_model
from hdm.models.hybrid import image_gradients
from hdm.train_state import TrainState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("hw", [(37, 45), (1, 1), (16, 24)])
@pytest.mark.parametrize("edge", [True, False])
def test_generator_any_size(hw, edge):
    model = HybridNet(width=8, ms_channels=2, edge_stream=edge).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *hw))
    assert out.shape == (1, 3, *hw) and torch.isfinite(out).all()


def test_edge_stream_is_used():
    torch.manual_seed(0)
    model = HybridNet(width=8, ms_channels=2)
    seen = []
    model.weight_maps.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(torch.rand(1, 3, 16, 16))
    assert seen == [(1, 2 * 4 * (3 + 3 * 2), 16, 16)]  # g and p for four directions over x's channels


def test_gradients_of_the_image():
    img = torch.arange(12.0).view(1, 1, 3, 4).expand(1, 3, 3, 4)
    grads = image_gradients(img)
    assert grads.shape == (1, 6, 3, 4)
    assert torch.equal(grads[0, 0, :, :3], torch.ones(3, 3)) and torch.equal(grads[0, 3, :2], torch.full((2, 4), 4.0))


def test_discriminator_follows_table_one():
    disc = Discriminator()
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10
    assert [c.out_channels for c in convs] == [32, 64, 64, 128, 128, 256, 256, 512, 512, 1]
    assert [c.kernel_size[0] for c in convs] == [5, 3] * 4 + [5, 4]
    assert [c.stride[0] for c in convs] == [2, 1] * 4 + [2, 1]
    assert disc(torch.rand(2, 3, 128, 128)).shape == (2, 1, 1, 1)
    with pytest.raises(ValueError, match="at least 128"):
        disc(torch.rand(1, 3, 96, 128))


def test_one_gan_step_updates_both_networks():
    torch.manual_seed(0)
    gen, disc = HybridNet(width=8, ms_channels=2), Discriminator(width=4)
    opt_g, opt_d = torch.optim.Adam(gen.parameters(), 1e-3), torch.optim.Adam(disc.parameters(), 1e-3)
    sch_g, sch_d = (torch.optim.lr_scheduler.StepLR(o, 10, 0.5) for o in (opt_g, opt_d))
    g_before = [p.clone() for p in gen.parameters()]
    d_before = [p.clone() for p in disc.parameters()]
    batch = {"lq": torch.rand(2, 3, 128, 128) * 0.2, "gt": torch.rand(2, 3, 128, 128)}
    state = TrainState(gen, opt_g, sch_g, EpochSampler(2, 0, 2), disc=disc, d_optimizer=opt_d, d_scheduler=sch_d)
    logs = gan_train_step(state, gen, disc, batch, WeightedLosses([{"type": "MSE"}]), 1e-3, torch.device("cpu"))
    assert set(logs) == {"loss", "MSE", "adversarial", "discriminator"}
    assert all(np.isfinite(v) for v in logs.values())
    assert all(not torch.equal(a, b) for a, b in zip(g_before, gen.parameters()) if b.grad is not None)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gen.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d_before, disc.parameters()))
    assert all(p.requires_grad for p in disc.parameters())


def test_darkened_folder_protocols(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / f"{i}.png", rng.random((40, 50, 3)))
    test = DarkenedFolder(str(tmp_path), gamma=[3.0, 3.0], noise=[0.01, 0.01], seed=0)
    a, b = test[1], test[1]
    assert torch.equal(a["lq"], b["lq"])  # seeded: the same test set every time
    residual = a["lq"] - a["gt"] ** 3
    assert abs(residual.std().item() - 0.01) < 0.003
    train = DarkenedFolder(str(tmp_path), crop=16, augment=True)
    s = train[0]
    assert s["lq"].shape == s["gt"].shape == (3, 16, 16) and s["lq"].mean() < s["gt"].mean()
    with pytest.raises(ValueError, match=r"gamma: expected a \[low, high\] pair"):
        DarkenedFolder(str(tmp_path), gamma=[4.0, 2.0])


def test_hybrid_configs_and_ablations():
    cfg = load_config(os.path.join(ROOT, "configs", "lowlight", "hybrid_lol.yaml"))
    assert cfg["train"]["batch_size"] == 10 and cfg["data"]["train"]["crop"] == 128
    assert (cfg["schedule"]["type"], cfg["schedule"]["step_size"], cfg["schedule"]["gamma"]) == ("step", 8000, 0.5)
    assert cfg["optim"]["weight_decay"] == 1e-5 and cfg["train"]["iterations"] == 20000
    assert [(item["type"], item["weight"]) for item in cfg["losses"]] == [("MSE", 1.0), ("Perceptual", 0.05)]
    assert cfg["adversarial"]["weight"] == 1e-3
    abl = {os.path.basename(p)[:-5]: load_config(p) for p in
           __import__("glob").glob(os.path.join(ROOT, "configs", "ablations", "hybrid", "*.yaml"))}
    assert [item["type"] for item in abl["loss_mse"]["losses"]] == ["MSE"] and abl["loss_mse"]["adversarial"] is None
    assert abl["loss_mse_per"]["adversarial"] is None and len(abl["loss_mse_per"]["losses"]) == 2
    assert abl["loss_mse_adv"]["adversarial"] is not None and len(abl["loss_mse_adv"]["losses"]) == 1
    assert build_model(abl["no_edge_stream"]["model"]).edge_stream is False


def test_adversarial_config_is_validated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"type": "HybridNet"}, "adversarial": {"weight": 1e-3}}))
    with pytest.raises(ConfigError, match="adversarial"):
        load_config(str(path))


def test_gan_training_and_resume_through_fit(tmp_path):
    from hdm.checkpoint import load_checkpoint
    from hdm.data.demo import make_demo
    root = make_demo("lowlight", str(tmp_path / "ll"), samples_per_photo=1)
    cfg = {"name": "gan", "work_dir": str(tmp_path / "runs"),
           "model": {"type": "HybridNet", "width": 8, "ms_channels": 2},
           "data": {"train": {"type": "LOL", "root": root, "crop": 128}},
           "losses": [{"type": "MSE"}],
           "adversarial": {"discriminator": {"type": "Discriminator", "width": 4}, "weight": 1e-3,
                           "optim": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 1e-5}},
           "schedule": {"type": "step", "step_size": 1, "gamma": 0.5},
           "train": {"iterations": 2, "batch_size": 2, "save_every": 1, "log_every": 1}}
    (tmp_path / "gan.yaml").write_text(yaml.safe_dump(cfg))
    spec = importlib.util.spec_from_file_location("train_script", os.path.join(ROOT, "train.py"))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    train.main(["-c", str(tmp_path / "gan.yaml"), "train.iterations=1"])
    train.main(["-c", str(tmp_path / "gan.yaml"), "--resume", "auto"])
    ckpt = load_checkpoint(str(tmp_path / "runs" / "gan" / "checkpoints" / "iter_2.pth"))
    assert {"discriminator", "d_optimizer", "d_scheduler"} <= set(ckpt)
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.25)  # the default lr, halved twice
    assert ckpt["d_optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.25)


def test_lowlight_protocol_script(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(tmp_path / "clean" / f"{i}.png", rng.random((40, 48, 3)))
    torch.save({"model": HybridNet(width=8, ms_channels=2).state_dict()}, tmp_path / "w.pth")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "HybridNet", "width": 8, "ms_channels": 2}}))
    spec = importlib.util.spec_from_file_location("protocol", os.path.join(ROOT, "scripts", "lowlight_protocol.py"))
    protocol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(protocol)
    mean = protocol.main(["-c", str(tmp_path / "c.yaml"), "--weights", str(tmp_path / "w.pth"),
                          "--clean", str(tmp_path / "clean"), "--out", str(tmp_path / "res")])
    assert {"psnr", "ssim", "mse_h", "mse_s", "mse_v", "mse_hsv"} <= set(mean)
    assert (tmp_path / "res" / "meta.json").exists()
