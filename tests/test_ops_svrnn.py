import pytest
import torch

from hdm.ops.svrnn import DIRECTIONS, four_direction_max, spatial_rnn, spatial_rnn_loop


def inputs(shape=(2, 3, 5, 7), p_kind="uniform", seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    g = torch.randn(*shape, generator=gen, dtype=torch.float64)
    p = torch.rand(*shape, generator=gen, dtype=torch.float64)
    if p_kind == "zeros":
        p = torch.zeros_like(p)
    elif p_kind == "ones":
        p = torch.ones_like(p)
    elif p_kind == "mixed":  # exact 0s and 1s among ordinary values
        p = torch.where(p < 0.3, torch.zeros_like(p), torch.where(p > 0.7, torch.ones_like(p), p))
    return x, g, p


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("p_kind", ["uniform", "zeros", "ones", "mixed"])
def test_scan_equals_loop_values_and_gradients(direction, p_kind):
    x, g, p = inputs(p_kind=p_kind)
    args = [t.clone().requires_grad_() for t in (x, g, p)]
    ref_args = [t.clone().requires_grad_() for t in (x, g, p)]
    out, ref = spatial_rnn(*args, direction), spatial_rnn_loop(*ref_args, direction)
    assert torch.allclose(out, ref, atol=1e-12)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    (ref * weight).sum().backward()
    for a, b, name in zip(args, ref_args, "xgp"):
        assert torch.allclose(a.grad, b.grad, atol=1e-11), name


def test_long_sequences_stay_finite_with_p_near_one_and_zero():
    x, g, _ = inputs(shape=(1, 2, 3, 700))
    for p in (torch.full_like(x, 1 - 1e-9), torch.full_like(x, 1e-30)):
        out = spatial_rnn(x.float(), g.float(), p.float(), "left_right")
        assert torch.isfinite(out).all()
        assert torch.allclose(out.double(), spatial_rnn_loop(x, g, p.double(), "left_right"), atol=1e-3, rtol=1e-4)


def test_gradcheck_tiny():
    x, g, p = inputs(shape=(1, 1, 3, 4))
    args = [t.requires_grad_() for t in (x, g, p)]
    assert torch.autograd.gradcheck(lambda *a: spatial_rnn(*a, "bottom_top"), args)


def test_four_direction_max_takes_the_per_pixel_maximum():
    x, _, _ = inputs(shape=(1, 2, 4, 5))
    g = torch.rand(1, 8, 4, 5, dtype=torch.float64)
    p = torch.rand(1, 8, 4, 5, dtype=torch.float64)
    scans = [spatial_rnn_loop(x, g[:, 2 * i:2 * i + 2], p[:, 2 * i:2 * i + 2], d) for i, d in enumerate(DIRECTIONS)]
    assert torch.allclose(four_direction_max(x, g, p), torch.stack(scans).amax(0), atol=1e-12)


def test_unit_gain_recurrence_cannot_brighten_but_two_maps_can():
    """The paper's Fig. 4 argument: with g = 1 - p (a normalised filter) every h is a convex
    combination of inputs, so a dark image stays dark; an independent g raises the brightness."""
    torch.manual_seed(0)
    dark = torch.rand(1, 3, 32, 32) * 0.2
    p = torch.rand_like(dark)
    unit = spatial_rnn(dark, 1 - p, p, "left_right")
    assert unit.mean() <= dark.mean() + 1e-6 and unit.max() <= dark.max() + 1e-6
    two = spatial_rnn(dark, torch.full_like(dark, 2.0), p, "left_right")
    assert two.mean() > 2 * dark.mean()


def test_bad_arguments():
    x, g, p = inputs()
    with pytest.raises(ValueError, match="direction"):
        spatial_rnn(x, g, p, "diagonal")
    with pytest.raises(ValueError, match="one shape"):
        spatial_rnn(x, g[..., :3], p, "left_right")
