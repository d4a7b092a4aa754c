
import pytest
import torch
import torch.nn.functional as F

from hdm.models import HDM, RegionConv, build_model, count_parameters
from hdm.models.blocks import straight_through_onehot
from hdm.models.convert import convert_official_checkpoint, convert_state_dict
from hdm.ops.dcp import dcp_region_masks

from . import helpers
from .test_ops_deform_conv import naive_dcn


def released_listing():
    return helpers.released_listing("hdm")


def test_released_parameter_count():
    assert count_parameters(HDM()) == 2_819_292


@pytest.mark.parametrize("region,count", [("dcp", 2_366_406), ("learned", 2_369_291)])
def test_paper_table5_counts_with_seven_blocks(region, count):
    assert count_parameters(HDM(blocks_per_group=7, region=region)) == count


def test_state_dict_matches_released_names_and_shapes():
    ours = {k: tuple(v.shape) for k, v in HDM().state_dict().items()}
    released = {k: s for k, s in released_listing() if not k.startswith("drconv.") and k not in ("mix3.w", "mix4.w")}
    assert ours == released


def test_build_model_from_table():
    model = build_model({"type": "HDM", "dim": 16, "blocks_per_group": 1})
    assert isinstance(model, HDM)
    with pytest.raises(KeyError, match="valid: HDM"):
        build_model({"type": "FFA"})


@pytest.mark.parametrize("hw", [(481, 321), (2, 3), (1, 1), (17, 6)])
def test_any_input_size(hw):
    model = HDM(dim=16, blocks_per_group=1).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *hw))
    assert out.shape == (1, 3, *hw) and torch.isfinite(out).all()


def test_bad_inputs_raise_clear_errors():
    model = HDM(dim=16, blocks_per_group=1)
    with pytest.raises(ValueError, match="RGB batch"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="region masks must be"):
        model(torch.rand(1, 3, 16, 16), mask=torch.ones(1, 5, 3, 3))
    with pytest.raises(ValueError, match="letters"):
        HDM(stages="PSX")


def test_given_mask_is_used_and_default_is_dcp():
    model = HDM(dim=16, blocks_per_group=1).eval()
    lq = torch.rand(2, 3, 32, 40)
    masks = dcp_region_masks(lq)
    with torch.no_grad():
        auto = model(lq)
        explicit = model(lq, masks)
        other = model(lq, torch.roll(masks, 1, dims=1))
    assert torch.equal(auto, explicit)
    assert not torch.allclose(auto, other)


def test_repeated_letters_reuse_modules():
    model = HDM(dim=16, blocks_per_group=1)
    calls = {"dcn": 0, "region": 0}
    model.dcn_block.register_forward_hook(lambda *a: calls.__setitem__("dcn", calls["dcn"] + 1))
    model.drconv_phy.register_forward_hook(lambda *a: calls.__setitem__("region", calls["region"] + 1))
    model(torch.rand(1, 3, 16, 16))
    assert calls == {"dcn": 2, "region": 2}


def test_region_conv_with_one_region_is_a_dynamic_conv():
    rc = RegionConv(8, num_regions=1).double()
    x = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    out = rc(x, torch.ones(2, 1, 6, 7, dtype=torch.float64))
    for i in range(2):
        w = rc.conv_kernel(x[i:i + 1]).reshape(8, 8, 3, 3)
        assert torch.allclose(out[i:i + 1], F.conv2d(x[i:i + 1], w, padding=1), atol=1e-12)


def test_region_conv_filter_layout_and_masked_sum():
    rc = RegionConv(4, num_regions=3).double()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    regions = torch.randint(0, 3, (1, 5, 5))
    mask = F.one_hot(regions, 3).permute(0, 3, 1, 2).double()
    out = rc(x, mask)
    pooled = F.adaptive_avg_pool2d(x, 3)
    sig = torch.sigmoid(F.conv2d(pooled, rc.conv_kernel[1].weight, rc.conv_kernel[1].bias))  # (1, 9, 3, 3)
    w3, b3 = rc.conv_kernel[3].weight, rc.conv_kernel[3].bias  # (3*4*4, 3, 1, 1)
    for r in range(3):
        idx = torch.arange(r * 16, (r + 1) * 16)  # filters of region r: channels (r*C + out)*C + in
        taps = torch.einsum("oj,jyx->oyx", w3[idx, :, 0, 0], sig[0, 3 * r:3 * r + 3]) + b3[idx].view(-1, 1, 1)
        feat = F.conv2d(x, taps.reshape(4, 4, 3, 3), padding=1)
        sel = regions[0] == r
        assert torch.allclose(out[0][:, sel], feat[0][:, sel], atol=1e-12)


def test_learned_guide_is_straight_through():
    guide = torch.randn(2, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    masks = straight_through_onehot(guide)
    assert torch.equal(masks.detach(), F.one_hot(guide.argmax(1), 3).permute(0, 3, 1, 2).double())
    # backward through the masks is the softmax Jacobian applied to the upstream gradient
    g = torch.randn_like(masks)
    (grad,) = torch.autograd.grad((masks * g).sum(), guide)
    soft = torch.softmax(guide, 1)
    assert torch.allclose(grad, soft * (g - (soft * g).sum(1, keepdim=True)), atol=1e-12)
    # and the learned-guide region conv routes its features through exactly those masks
    rc = RegionConv(4, num_regions=3, learned_guide=True).double()
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    regions = rc.conv_guide(x).argmax(1)
    fixed = RegionConv(4, num_regions=3).double()
    fixed.conv_kernel.load_state_dict(rc.conv_kernel.state_dict())
    assert torch.allclose(rc(x), fixed(x, F.one_hot(regions, 3).permute(0, 3, 1, 2).double()), atol=1e-12)


def random_release_state(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"module." + k: torch.randn(*s, generator=gen) * 0.05 for k, s in released_listing()}


def functional_release_forward(sd, lq, mask):
    """The released DR_Net_phy forward written with torch.nn.functional on the state-dict tensors."""
    def c(x, name, stride=1):
        w = sd[name + ".weight"]
        return F.conv2d(x, w, sd[name + ".bias"], stride, w.shape[-1] // 2)

    def up(x, name):
        x = F.conv_transpose2d(x, sd[name + ".weight"], sd[name + ".bias"], 2, 1)
        return F.relu(F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="reflect"), 2, 1))

    def fa(x, p):
        r = F.relu(c(x, p + ".conv1")) + x
        r = c(r, p + ".conv2")
        a = torch.sigmoid(c(F.relu(c(F.adaptive_avg_pool2d(r, 1), p + ".calayer.ca.0")), p + ".calayer.ca.2"))
        r = r * a
        r = r * torch.sigmoid(c(F.relu(c(r, p + ".palayer.pa.0")), p + ".palayer.pa.2"))
        return r + x

    def dcn(x):
        om = c(x, "dcn_block.dcn.conv_offset_mask")
        return naive_dcn(x, om[:, :18], torch.sigmoid(om[:, 18:]), sd["dcn_block.dcn.weight"],
                         sd["dcn_block.dcn.bias"], 1, 1, 1)

    def region(x):
        b, ch, h, w = x.shape
        k = F.adaptive_avg_pool2d(x, 3)
        k = torch.sigmoid(c(k, "drconv_phy.conv_kernel.1"))
        k = F.conv2d(k, sd["drconv_phy.conv_kernel.3.weight"], sd["drconv_phy.conv_kernel.3.bias"], groups=5)
        out = torch.zeros_like(x)
        for i in range(b):
            for r in range(5):
                wr = k[i].reshape(5, ch, ch, 3, 3)[r]
                out[i] += F.conv2d(x[i:i + 1], wr, padding=1)[0] * mask[i, r]
        return out

    # the release normalises float32 tensors: constants rounded to float32
    mean = torch.tensor([0.64, 0.6, 0.58]).to(lq.dtype).view(1, 3, 1, 1)
    std = torch.tensor([0.14, 0.15, 0.152]).to(lq.dtype).view(1, 3, 1, 1)
    x = F.relu(c((lq - mean) / std, "conv0.0"))
    res1 = x = F.relu(c(c(x, "conv1.0"), "conv1.1", 2))
    res2 = x = F.relu(c(c(x, "conv2.0"), "conv2.1", 2))
    for g in range(3):
        y = x
        for i in range(9):
            y = fa(y, f"FAB.{g}.gp.{i}")
        x = c(y, f"FAB.{g}.gp.9") + x
    x = F.relu(x)
    x = region(dcn(x))
    x = region(dcn(x))
    s1, s2 = torch.sigmoid(sd["mix1.w"]), torch.sigmoid(sd["mix2.w"])
    x = up(res2 * s1 + x * (1 - s1), "deconv1.0")
    x = up(res1 * s2 + x * (1 - s2), "deconv2.0")
    return torch.tanh(c(c(c(x, "output.0"), "output.1"), "output.2"))


def test_converted_release_equals_functional_recomputation(tmp_path):
    released = random_release_state()
    src, dst = tmp_path / "hdm_haze_sots.pk", tmp_path / "converted.pth"
    torch.save({"model": released}, src)
    dropped = convert_official_checkpoint(src, dst)
    assert sorted(dropped) == sorted(k for k in released if k.startswith("module.drconv.") or k.endswith(("mix3.w", "mix4.w")))
    ckpt = torch.load(dst, weights_only=True)
    model = HDM().double().eval()
    model.load_state_dict(ckpt["model"])
    lq = torch.rand(1, 3, 16, 20, dtype=torch.float64)
    mask = dcp_region_masks(lq)
    sd = {k[len("module."):]: v.double() for k, v in released.items()}
    with torch.no_grad():
        assert torch.allclose(model(lq, mask), functional_release_forward(sd, lq, mask), atol=1e-10)


def test_converter_fails_loudly_on_foreign_keys():
    released = random_release_state()
    released["module.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        convert_state_dict(released, "hdm")
    released = random_release_state()
    del released["module.mix1.w"]
    with pytest.raises(ValueError, match="missing"):
        convert_state_dict(released, "hdm")
    released = random_release_state()
    released["module.conv0.0.bias"] = torch.zeros(3)
    with pytest.raises(ValueError, match="wrong shapes"):
        convert_state_dict(released, "hdm")
