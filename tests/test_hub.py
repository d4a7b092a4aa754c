"""hubconf.py through torch.hub.load(..., source="local"), and what the returned models accept."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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


@pytest.fixture(scope="module")
def hub_models():
    """A parameter-free model (any float dtype) and one with float32 weights, as the hub returns them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained warning
        return {"dcp": torch.hub.load(ROOT, "dcp", source="local"),
                "aecrnet": torch.hub.load(ROOT, "aecrnet", source="local", ngf=8, block_repeats=1)}


DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "uint8": np.uint8, "int64": np.int64,
          "bool": np.bool_}


@st.composite
def images(draw):
    """Tensors of any of DTYPES, of 0 to 5 dimensions of 0 to 5 (often (B, 3, H, W)), with values mostly
    in [0, 1], sometimes above (8-bit scale), below, NaN or infinite."""
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(st.one_of(st.tuples(st.integers(0, 2), st.just(3), st.integers(0, 5), st.integers(0, 5)),
                           hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)))
    scale = draw(st.sampled_from([1.0, 1.0, 255.0, -1.0]))
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1) | st.sampled_from([np.nan, np.inf, -np.inf])
                             if draw(st.booleans()) else st.floats(0, 1)))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and infinity cast to integers: whatever comes
        cast = np.asarray(values * scale).astype(DTYPES[dtype]) if dtype != "bool" else np.asarray(values > 0.5)
    return torch.from_numpy(cast)


def acceptable(image, takes_any_float):
    """The hub's input contract, stated on its own: (B, 3, H, W) floats with finite values in [0, 1]
    (float32, the weights' dtype, for a model with weights)."""
    if not image.is_floating_point() or (not takes_any_float and image.dtype != torch.float32):
        return False
    if image.dim() != 4 or image.shape[1] != 3 or image.numel() == 0:
        return False
    x = image.double()
    return bool(torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1)


@settings(deadline=None, database=None, max_examples=150)
@given(name=st.sampled_from(["dcp", "aecrnet"]), image=images())
@example(name="aecrnet", image=torch.rand(2, 3, 5, 4))
@example(name="dcp", image=torch.rand(1, 3, 3, 5, dtype=torch.float64))
def test_the_hub_models_take_their_contract_and_refuse_anything_else_in_one_line(hub_models, name, image):
    """An acceptable image gives an image in [0, 1] of its shape, or, where the model's output is not finite
    (DCP on a black image, whose atmospheric light is 0), an error naming the model: never NaN."""
    model = hub_models[name]
    if acceptable(image, takes_any_float=name == "dcp"):
        try:
            with torch.inference_mode():
                out = model(image)
        except ValueError as err:
            assert str(err).startswith(f"{model.source}: the output is not finite for a valid image (") and \
                str(err).endswith("output values are NaN or infinite)" + ("; the weights may be broken" if name == "aecrnet"
                                                                              else ""))
            return
        assert out.shape == image.shape and bool(torch.isfinite(out).all()) and 0 <= out.min() and out.max() <= 1
    else:
        with pytest.raises(ValueError) as err:
            model(image)
        assert str(err.value).startswith("image: ") and "\n" not in str(err.value)


def test_refusals_say_what_was_expected_and_what_came(hub_models):
    dcp, aecrnet = hub_models["dcp"], hub_models["aecrnet"]
    cases = [(dcp, torch.full((1, 3, 8, 8), 255.0),
              "image: values must lie in [0, 1], got max 255 (divide 8-bit images by 255)"),
             (dcp, torch.full((1, 3, 8, 8), float("nan")),
              "image: values must be finite, got 192 NaN or infinite value(s)"),
             (dcp, torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
              "image: expected a float tensor with values in [0, 1], got torch.uint8 (image.float() / 255 for 8-bit "
              "values)"),
             (dcp, torch.zeros(3, 8, 8),
              "image: expected shape (B, 3, H, W), got (3, 8, 8) (image[None] adds the batch dimension)"),
             (dcp, torch.zeros(1, 8, 8, 3),
              "image: expected shape (B, 3, H, W), got (1, 8, 8, 3) (image.permute(0, 3, 1, 2) for channels last)"),
             (dcp, np.zeros((8, 8, 3), np.uint8),
              "image: expected a torch.Tensor (B, 3, H, W), got ndarray (torch.from_numpy(x).permute(2, 0, 1)[None] "
              "/ 255 for an 8-bit H x W x 3 array)"),
             (aecrnet, torch.zeros(1, 3, 8, 8, dtype=torch.float64),
              "image: expected torch.float32 like the model's weights, got torch.float64 (image.to(torch.float32))"),
             (aecrnet, torch.full((1, 3, 8, 8), -1.0),
              "image: values must lie in [0, 1], got min -1 (map [-1, 1] images with (x + 1) / 2)")]
    for model, image, message in cases:
        with pytest.raises(ValueError) as err:
            model(image)
        assert str(err.value) == message


def test_an_output_that_is_not_finite_names_the_weights(tmp_path):
    cfg = {"type": "AECRNet", "ngf": 8, "block_repeats": 1}
    model = build_model(cfg)
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    torch.save({"model": model.state_dict(), "config": {"model": cfg}}, tmp_path / "broken.pth")
    hub = torch.hub.load(ROOT, "aecrnet", source="local", weights=str(tmp_path / "broken.pth"))
    with pytest.raises(ValueError) as err:
        hub(torch.rand(1, 3, 16, 16))
    assert str(err.value).startswith(f"AECRNet weights {tmp_path / 'broken.pth'}: the output is not finite for a valid "
                                     f"image (") and str(err.value).endswith("; the weights may be broken")
    assert isinstance(hub, Deployed) and Deployed(hub.model)(torch.full((1, 3, 16, 16), 255.0)).shape == (1, 3, 16, 16)
