import pytest
import torch

from hdm.data.sampler import EpochSampler
from hdm.device import autocast
from hdm.engine import train_step
from hdm.losses import WeightedLosses
from hdm.models import HDM
from hdm.train_state import TrainState

CPU = torch.device("cpu")


def step(model, amp, scaler=None):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    state = TrainState(model, opt, torch.optim.lr_scheduler.StepLR(opt, 10), EpochSampler(2, 0, 2), scaler=scaler)
    batch = {"lq": torch.rand(2, 3, 32, 32), "gt": torch.rand(2, 3, 32, 32)}
    return train_step(state, model, batch, WeightedLosses([{"type": "L1"}]), CPU, amp)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_update_fp32_weights(amp):
    torch.manual_seed(0)
    model = HDM(dim=8, groups=1, blocks_per_group=1)
    before = model.conv0[0].weight.clone()
    logs = step(model, amp, torch.amp.GradScaler("cpu") if amp == "fp16" else None)
    assert all(v == v for v in logs.values())
    assert model.conv0[0].weight.dtype == torch.float32 and not torch.equal(before, model.conv0[0].weight)


def test_autocast_modes():
    with autocast(CPU, "bf16"):
        assert torch.mm(torch.rand(2, 2), torch.rand(2, 2)).dtype == torch.bfloat16
    with autocast(CPU, "off"):
        assert torch.mm(torch.rand(2, 2), torch.rand(2, 2)).dtype == torch.float32
    with pytest.raises(ValueError, match="amp mode"):
        autocast(CPU, "int8")


def test_dcp_masks_stay_float32_under_autocast():
    model = HDM(dim=8, groups=1, blocks_per_group=1)
    x = torch.rand(1, 3, 64, 64)
    with autocast(CPU, "bf16"):
        masks = model.region_masks(x)
    assert masks.dtype == torch.float32 and torch.equal(masks, model.region_masks(x))


def test_channels_last_and_activation_checkpointing_change_nothing():
    torch.manual_seed(0)
    a = HDM(dim=8, groups=2, blocks_per_group=1)
    b = HDM(dim=8, groups=2, blocks_per_group=1, checkpoint_groups=True)
    b.load_state_dict(a.state_dict())
    c = HDM(dim=8, groups=2, blocks_per_group=1).to(memory_format=torch.channels_last)
    c.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 32, 32)
    outs = [m(x) for m in (a, b, c)]
    for out in outs:
        out.sum().backward()
    assert torch.equal(outs[0], outs[1]) and torch.allclose(outs[0], outs[2], atol=1e-5)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p.grad, q.grad) and torch.allclose(p.grad, r.grad, atol=1e-4)


def test_bf16_only_where_the_cpu_computes_it(monkeypatch, caplog):
    from hdm.device import _say_fp32, amp_mode, cpu_bf16_native
    _say_fp32.cache_clear()  # the line is said once per process
    cuda = torch.device("cuda")
    assert amp_mode("auto", cuda) == "fp16" and amp_mode("bf16", cuda) == "bf16" and amp_mode("off", CPU) == "off"
    monkeypatch.setenv("HDM_CPU_BF16", "1")
    assert cpu_bf16_native() and amp_mode("auto", CPU) == "bf16" and amp_mode("bf16", CPU) == "bf16"
    monkeypatch.setenv("HDM_CPU_BF16", "0")
    with caplog.at_level("WARNING", logger="hdm"):
        assert amp_mode("auto", CPU) == "off" and amp_mode("bf16", CPU) == "off"
    assert "HDM_CPU_BF16=0 turns bf16 off; running in fp32" in caplog.text and "lack" not in caplog.text
    monkeypatch.delenv("HDM_CPU_BF16")
    monkeypatch.setattr("hdm.device.cpu_features", lambda: ("avx2",))
    with caplog.at_level("WARNING", logger="hdm"):
        assert amp_mode("bf16", CPU) == "off"
    assert "this CPU has no native bf16 (flags avx2 lack avx512_bf16 / amx_bf16)" in caplog.text


def test_amp_table_scores_the_amp_outputs_with_the_fp32_metric_code(tmp_path, monkeypatch):
    """test.py --amp runs the model under bf16 autocast, but its scores are those of the float32 metric code on
    the same outputs: the input's columns equal the fp32 table's, the output's equal get_metric on the outputs."""
    import csv

    import numpy as np
    import yaml

    from hdm.checkpoint import atomic_save
    from hdm.cli import test as test_cli
    from hdm.image_io import write_image
    from hdm.metrics import get_metric

    from .helpers import hazy_photo, to_tensor

    monkeypatch.setenv("HDM_CPU_BF16", "1")  # bf16 autocast on any CPU
    torch.manual_seed(0)
    model = HDM(dim=8, groups=1, blocks_per_group=1)
    atomic_save({"model": model.state_dict()}, tmp_path / "w.pth")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"type": "HDM", "dim": 8, "groups": 1, "blocks_per_group": 1}}))
    write_image(tmp_path / "lq" / "a.png", hazy_photo(size=(48, 64))[0])
    write_image(tmp_path / "gt" / "a.png", hazy_photo(beta=0.05, size=(48, 64))[0])
    data = ["data.test.type=PairedFolder", f"data.test.lq_dir={tmp_path / 'lq'}", f"data.test.gt_dir={tmp_path / 'gt'}"]

    def table(*flags):
        out = tmp_path / ("amp" if flags else "fp32")
        test_cli.main(["-c", str(tmp_path / "c.yaml"), *data, "--weights", str(tmp_path / "w.pth"), "--out", str(out), *flags])
        with open(out / "per_image.csv") as f:
            return {k: float(v) for k, v in next(csv.DictReader(f)).items() if k != "name"}

    amp, fp32 = table("--amp"), table()
    assert amp["input_psnr"] == fp32["input_psnr"] and amp["input_ssim"] == fp32["input_ssim"]
    lq, gt = to_tensor(np.asarray(hazy_photo(size=(48, 64))[0])), to_tensor(hazy_photo(beta=0.05, size=(48, 64))[0])
    with torch.inference_mode(), autocast(CPU, "bf16"):
        out = model.eval()(lq).clamp(0, 1)
    assert out.dtype == torch.bfloat16  # the model did run in bf16
    expected = get_metric("ffa_rgb")(out.float(), gt)
    assert amp["psnr"] == pytest.approx(float(expected["psnr"][0]), abs=1e-4)
    assert amp["ssim"] == pytest.approx(float(expected["ssim"][0]), abs=1e-4)
