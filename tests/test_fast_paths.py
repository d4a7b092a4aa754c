"""Every faster computation against the straightforward one it replaces (equal up to float rounding)."""
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hdm.device import keep_freed_memory, memory_format
from hdm.models.blocks import RegionConv, is_one_hot, region_conv_masked_sum, region_conv_per_region
from hdm.models.hdm import HDM, ReflectAvgPool


def random_regions(b, n, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    region = torch.randint(0, n, (b, h, w), generator=g)
    return region, F.one_hot(region, n).permute(0, 3, 1, 2).double()


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("hw", [(2, 2), (5, 7), (16, 9)])
def test_reflect_avg_pool_equals_pad_then_pool(fmt, hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    slow = nn.Sequential(nn.ReflectionPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1))(x)
    fast = ReflectAvgPool()(x)
    assert fast.shape == slow.shape == x.shape
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-14)
    g = torch.randn_like(slow)
    (gs,) = torch.autograd.grad(slow, x, g)
    (gf,) = torch.autograd.grad(fast, x, g)
    torch.testing.assert_close(gf, gs, rtol=0, atol=1e-14)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("b,n,k,h,w", [(1, 5, 3, 9, 11), (3, 4, 3, 6, 5), (2, 1, 3, 4, 4), (2, 3, 5, 7, 6)])
def test_region_conv_per_region_equals_masked_sum(fmt, b, n, k, h, w):
    torch.manual_seed(0)
    c, c_out = 6, 4
    x = torch.randn(b, c, h, w, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    filters = torch.randn(b, n, c_out, c, k, k, dtype=torch.float64, requires_grad=True)
    region, mask = random_regions(b, n, h, w)
    region[0, 0, :] = 0  # a region that is absent in some sample is fine too
    mask = F.one_hot(region, n).permute(0, 3, 1, 2).double()
    slow = region_conv_masked_sum(x, filters, mask)
    fast = region_conv_per_region(x, filters, region)
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-12)
    g = torch.randn_like(slow)
    torch.testing.assert_close(torch.autograd.grad(fast, (x, filters), g), torch.autograd.grad(slow, (x, filters), g),
                               rtol=0, atol=1e-12)


def test_region_conv_auto_strategy_and_its_guards():
    torch.manual_seed(0)
    layer = RegionConv(8, num_regions=3)
    x = torch.randn(2, 8, 10, 12)
    _, mask = random_regions(2, 3, 10, 12)
    mask = mask.float()
    outs = {}
    for strategy in ("masked_sum", "per_region", "auto"):
        layer.strategy = strategy
        outs[strategy] = layer(x, mask)
    torch.testing.assert_close(outs["per_region"], outs["masked_sum"], rtol=0, atol=1e-5)
    with torch.no_grad():
        assert layer._per_region(x, mask)  # CPU inference with one-hot masks: the faster way
        assert not layer._per_region(x, mask * 0.5)  # soft masks: the release's way
    assert not layer._per_region(x, mask)  # training: the release's way (faster with gradients)
    layer.strategy = "per_region"
    with pytest.raises(ValueError, match="one-hot"):
        layer(x, mask * 0.5)
    with pytest.raises(ValueError, match="strategy"):
        RegionConv(8, strategy="fastest")
    assert is_one_hot(mask) and not is_one_hot(mask * 0.5)


def test_learned_guide_still_gets_gradients_under_auto():
    torch.manual_seed(0)
    layer = RegionConv(8, num_regions=3, learned_guide=True)
    layer(torch.randn(1, 8, 6, 6)).sum().backward()
    assert layer.conv_guide.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("region", ["dcp", "learned"])
def test_hdm_fast_defaults_equal_the_release_computation(region):
    """The whole network: default strategies and channels_last against masked sum in NCHW, values and
    gradients (float32 tolerance)."""
    torch.manual_seed(0)
    slow = HDM(dim=16, groups=1, blocks_per_group=1, region=region, region_strategy="masked_sum")
    fast = HDM(dim=16, groups=1, blocks_per_group=1, region=region)
    fast.load_state_dict(slow.state_dict())
    fast = fast.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 36, 44)
    with torch.no_grad():
        torch.testing.assert_close(fast.eval()(x), slow.eval()(x), rtol=0, atol=1e-5)
    slow.train()(x).square().sum().backward()
    fast.train()
    if region == "dcp":
        fast.drconv_phy.strategy = "per_region"  # the faster path's gradients too
    fast(x).square().sum().backward()
    for (name, p), q in zip(slow.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_memory_format_choice():
    cpu = torch.device("cpu")
    assert memory_format("auto", cpu) == torch.channels_last
    assert memory_format("auto", torch.device("cuda")) == torch.contiguous_format
    assert memory_format("contiguous", cpu) == torch.contiguous_format
    with pytest.raises(ValueError, match="memory format"):
        memory_format("nhwc", cpu)


def test_keep_freed_memory_applies_on_linux_and_is_harmless(monkeypatch):
    monkeypatch.delenv("HDM_KEEP_FREED_MEMORY", raising=False)
    keep_freed_memory.cache_clear()
    assert keep_freed_memory() is sys.platform.startswith("linux")
    x = torch.randn(20_000_000)  # 80 MB: above glibc's mmap threshold
    del x
    y = torch.ones(20_000_000)
    assert float(y.sum()) == 20_000_000
