"""hubconf.py through torch.hub.load(..., source="local")."""
import warnings

import pytest
import torch

from hdm.export import Deployed
from hdm.inference import load_model
from hdm.models import build_model
from tests.helpers import ROOT, hazy_photo, to_tensor


def test_hub_loads_a_checkpoint_with_its_stored_config(tmp_path):
    cfg = {"type": "HDM", "dim": 16, "groups": 1, "blocks_per_group": 1}
    torch.manual_seed(0)
    model = build_model(cfg)
    ema = {k: v + 0.01 for k, v in model.state_dict().items()}
    torch.save({"model": model.state_dict(), "ema": ema, "config": {"model": cfg}}, tmp_path / "w.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trained: no warning
        hub = torch.hub.load(ROOT, "hdm", source="local", weights=str(tmp_path / "w.pth"))
    assert hub.trained and hub.config == cfg and not hub.training
    x = to_tensor(hazy_photo("coffee", size=(83, 117))[0])
    with torch.inference_mode():
        out = hub(x)
        ref = Deployed(load_model(cfg, str(tmp_path / "w.pth"), torch.device("cpu")))(x)  # the EMA weights, as predict uses
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert torch.allclose(out, ref, atol=1e-6)


def test_hub_without_weights_says_untrained_and_checks_the_type(tmp_path):
    with pytest.warns(UserWarning, match="UNTRAINED"):
        hub = torch.hub.load(ROOT, "aecrnet", source="local", ngf=8, block_repeats=1)
    assert not hub.trained
    dcp = torch.hub.load(ROOT, "dcp", source="local")
    assert dcp.trained and dcp(torch.rand(1, 3, 40, 50)).shape == (1, 3, 40, 50)
    torch.save({"model": build_model({"type": "DCP"}).state_dict(), "config": {"model": {"type": "PFDCP"}}}, tmp_path / "p.pth")
    with pytest.raises(ValueError, match="holds a PFDCP model, not HybridNet; use the entry 'pfdcp'"):
        torch.hub.load(ROOT, "hybrid", source="local", weights=str(tmp_path / "p.pth"))
