import math

import pytest
import torch

from hdm.ops import ModulatedDeformConv2d, available_backends, deform_conv2d_torch, modulated_deform_conv2d
from hdm.ops.deform_conv import resolve_backend, time_backends


def naive_dcn(x, offset, mask, weight, bias, stride, padding, dilation):
    """DCNv2 written out from its definition, with explicit corner gathers (no grid_sample)."""
    b, c, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = torch.zeros(b, c_out, h_out, w_out, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            t = i * kw + j
            ys = torch.arange(h_out, dtype=x.dtype).view(-1, 1) * stride - padding + i * dilation
            xs = torch.arange(w_out, dtype=x.dtype).view(1, -1) * stride - padding + j * dilation
            py = ys + offset[:, 2 * t]
            px = xs + offset[:, 2 * t + 1]
            y0, x0 = torch.floor(py), torch.floor(px)
            val = torch.zeros(b, c, h_out, w_out, dtype=x.dtype)
            for dy in (0, 1):
                for dx in (0, 1):
                    yy, xx = y0 + dy, x0 + dx
                    wgt = (1 - (py - yy).abs()) * (1 - (px - xx).abs())
                    inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
                    idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().view(b, 1, -1).expand(b, c, -1)
                    g = torch.gather(x.view(b, c, -1), 2, idx).view(b, c, h_out, w_out)
                    val = val + g * (wgt * inside).unsqueeze(1)
            val = val * mask[:, t].unsqueeze(1)
            out = out + torch.einsum("oc,bchw->bohw", weight[:, :, i, j], val)
    return out + bias.view(1, -1, 1, 1)


def make_inputs(b=2, c=3, h=7, w=6, c_out=4, k=3, stride=1, padding=1, scale=3.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    h_out = (h + 2 * padding - (k - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - (k - 1) - 1) // stride + 1
    # offsets up to +-scale pixels: many taps land outside the image or straddle its border
    offset = (torch.rand(b, 2 * k * k, h_out, w_out, generator=gen, dtype=torch.float64) * 2 - 1) * scale
    mask = torch.rand(b, k * k, h_out, w_out, generator=gen, dtype=torch.float64)
    weight = torch.randn(c_out, c, k, k, generator=gen, dtype=torch.float64)
    bias = torch.randn(c_out, generator=gen, dtype=torch.float64)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0)])
def test_torch_backend_matches_definition(stride, padding):
    x, offset, mask, weight, bias = make_inputs(stride=stride, padding=padding)
    got = deform_conv2d_torch(x, offset, mask, weight, bias, stride, padding, 1)
    ref = naive_dcn(x, offset, mask, weight, bias, stride, padding, 1)
    assert torch.allclose(got, ref, atol=1e-12, rtol=0)


def test_some_samples_fall_outside_the_image():
    x, offset, *_ = make_inputs()
    # the test data really exercises the zero-outside rule
    ys = torch.arange(7, dtype=torch.float64).view(1, 1, -1, 1) - 1 + offset[:, 0::2]
    assert (ys < -1).any() and (ys > 7).any()


def test_zero_offsets_and_unit_mask_equal_conv2d():
    x, offset, mask, weight, bias = make_inputs()
    got = deform_conv2d_torch(x, torch.zeros_like(offset), torch.ones_like(mask), weight, bias, 1, 1, 1)
    assert torch.allclose(got, torch.nn.functional.conv2d(x, weight, bias, padding=1), atol=1e-12)


def test_gradcheck_torch_backend():
    x, offset, mask, weight, bias = make_inputs(b=1, c=2, h=4, w=5, c_out=2, scale=1.3)
    args = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
    assert torch.autograd.gradcheck(lambda *a: deform_conv2d_torch(*a, 1, 1, 1), args, atol=1e-7)


@pytest.mark.parametrize("backend", [b for b in ("torchvision", "mmcv")])
def test_backend_equals_torch(backend):
    if backend not in available_backends():
        pytest.skip(f"{backend} deformable conv does not load here")
    x, offset, mask, weight, bias = make_inputs(scale=2.5)
    grads = {}
    for name in ("torch", backend):
        args = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
        out = modulated_deform_conv2d(*args[:3], args[3], args[4], 1, 1, 1, backend=name)
        out.backward(torch.cos(out.detach()))
        grads[name] = [out.detach()] + [a.grad for a in args]
    for ref, got, what in zip(grads["torch"], grads[backend], ["out", "x", "offset", "mask", "weight", "bias"]):
        assert torch.allclose(ref, got, atol=1e-10, rtol=1e-10), what


def test_layer_names_shapes_and_init():
    layer = ModulatedDeformConv2d(8, 6, 3, padding=1)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {"weight": (6, 8, 3, 3), "bias": (6,), "conv_offset_mask.weight": (27, 8, 3, 3),
                      "conv_offset_mask.bias": (27,)}
    assert layer.weight.abs().max() <= 1 / math.sqrt(8 * 9)
    # a fresh layer is a conv with mask sigmoid(0) = 0.5
    x = torch.randn(1, 8, 5, 5)
    ref = torch.nn.functional.conv2d(x, layer.weight * 0.5, layer.bias, padding=1)
    assert torch.allclose(layer(x), ref, atol=1e-5)


def test_layer_chunks_offset_and_mask_like_dcnv2():
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(3, 4, 3, padding=1).double()
    torch.nn.init.normal_(layer.conv_offset_mask.weight, std=0.3)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    om = layer.conv_offset_mask(x)
    o1, o2, m = om[:, :9], om[:, 9:18], om[:, 18:]
    ref = naive_dcn(x, torch.cat([o1, o2], 1), torch.sigmoid(m), layer.weight, layer.bias, 1, 1, 1)
    assert torch.allclose(layer(x), ref, atol=1e-12)


def test_unknown_or_missing_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="valid"):
        ModulatedDeformConv2d(2, 2, backend="cuda_ext")
    missing = [b for b in ("torchvision", "mmcv") if b not in available_backends()]
    if missing:
        with pytest.raises(RuntimeError, match="does not load"):
            resolve_backend(missing[0], "cpu")


def test_auto_uses_torch_on_cpu():
    assert resolve_backend("auto", "cpu") == "torch"


def test_time_backends_measures_every_available_backend():
    times = time_backends(torch.device("cpu"), shape=(1, 4, 6, 6), repeats=1)
    assert set(times) == set(available_backends()) and all(t > 0 for t in times.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_on_cuda_takes_the_measured_fastest():
    times = time_backends(torch.device("cuda"))
    chosen = resolve_backend("auto", "cuda")
    assert chosen in times and times[chosen] <= 1.5 * min(times.values())  # timings drift between two measurements
