import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hdm.ops import dcp
from hdm.ops import dcp_reference as ref

from .helpers import hazy_photo, to_tensor


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a)).double()[None, None]


@pytest.mark.parametrize("k", [1, 2, 15, 16, 223])
@pytest.mark.parametrize("shape", [(23, 31), (5, 3)])
def test_min_filter_equals_cv2_erode(k, shape):
    x = np.random.rand(*shape)
    got = dcp.min_filter(t64(x), k)[0, 0].numpy()
    np.testing.assert_array_equal(got, cv2.erode(x, np.ones((k, k), np.uint8)))


@pytest.mark.parametrize("k", [3, 60, 111])
@pytest.mark.parametrize("shape", [(40, 57), (7, 5)])
def test_box_filter_equals_cv2_reflect101(k, shape):
    x = np.random.rand(*shape)
    got = dcp.box_filter(t64(x), k)[0, 0].numpy()
    np.testing.assert_allclose(got, cv2.boxFilter(x, cv2.CV_64F, (k, k)), atol=1e-12)


def test_box_filter_clip_divides_by_pixels_in_image():
    x = np.random.rand(9, 11)
    got = dcp.box_filter(t64(x), 5, border="clip")[0, 0].numpy()
    want = np.array([[x[max(i - 2, 0):i + 3, max(j - 2, 0):j + 3].mean() for j in range(11)] for i in range(9)])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_guided_filter_equals_reference():
    i, p = np.random.rand(30, 41), np.random.rand(30, 41)
    got = dcp.guided_filter(t64(i), t64(p), 8, 1e-3)[0, 0].numpy()
    np.testing.assert_allclose(got, ref.guided(i, p, 8, 1e-3), atol=1e-10)


@pytest.mark.parametrize("size", [(75, 112), (40, 30)])
def test_resize_lanczos_equals_pil(size):
    img = np.random.rand(301, 451).astype(np.float32)
    want = np.asarray(Image.fromarray(img, mode="F").resize((size[1], size[0]), Image.LANCZOS))
    got = dcp.resize_lanczos(t64(img), size)[0, 0].numpy()
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_atmospheric_light_hist_equals_release_rule():
    hazy, _ = hazy_photo("coffee", beta=1.5)
    img = hazy / 255.0
    got = dcp.atmospheric_light_hist(torch.from_numpy(img).permute(2, 0, 1)[None])
    assert got.shape == (1, 3)
    assert got[0, 0].item() == pytest.approx(ref.atmosphere(img), abs=1e-12)


def test_atmospheric_light_top_picks_brightest_of_haziest():
    img = torch.full((1, 3, 40, 50), 0.2, dtype=torch.float64)
    img[0, :, 10:12, 20:22] = torch.tensor([0.8, 0.85, 0.9]).view(3, 1, 1)  # haze-opaque patch
    img[0, :, 11, 21] = torch.tensor([0.9, 0.95, 0.97])
    img[0, 0, 30, 30] = 1.0  # bright but with a dark channel of 0.2: not a candidate
    a = dcp.atmospheric_light_top(img, dcp.dark_channel(img, 1))
    assert torch.allclose(a[0], torch.tensor([0.9, 0.95, 0.97], dtype=torch.float64))


def test_grey_bgr_quirk_swaps_r_and_b_weights():
    img = torch.zeros(1, 3, 1, 1)
    img[0, 0] = 1.0
    assert dcp.grey(img)[0, 0, 0, 0].item() == pytest.approx(0.299)
    assert dcp.grey(img, bgr_quirk=True)[0, 0, 0, 0].item() == pytest.approx(0.114)


def test_bin_masks_follow_the_release_thresholds():
    t = torch.tensor([0.0, 0.1999, 0.2, 0.5, 0.6, 0.79, 0.8, 1.0], dtype=torch.float64).view(1, 1, 1, -1)
    regions = dcp.bin_masks(t, 5).argmax(dim=1).flatten().tolist()
    assert regions == [4, 4, 3, 2, 1, 1, 0, 0]
    m1 = dcp.bin_masks(t, 1)
    assert m1.shape == (1, 1, 1, 8) and bool((m1 == 1).all())
    flat = dcp.bin_masks(torch.full((1, 1, 3, 3), 0.4), 5)
    assert flat.sum().item() == 9 and flat[0, 4].sum().item() == 9


def test_masks_match_release_procedure_on_a_sots_size_photo():
    hazy, _ = hazy_photo("chelsea", size=(460, 620))  # SOTS size: masks 115 x 155
    want = ref.release_masks(hazy)
    got = dcp.dcp_region_masks(to_tensor(hazy, torch.float64))[0].numpy()
    assert got.shape == want.shape == (5, 115, 155)
    assert np.array_equal(got.sum(0), np.ones((115, 155)))
    agreement = (got.argmax(0) == want.argmax(0)).mean()
    assert agreement >= 0.98, agreement  # the release rounds its resized image and grey to uint8


def prior_exact_scene(t_fn, size=480, airlight=0.9):
    """Hazy image of a scene where the dark channel prior holds exactly (a zero channel per pixel)."""
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.1, 0.9, (size, size, 3))
    clean[np.arange(size)[:, None], np.arange(size)[None], rng.integers(0, 3, (size, size))] = 0
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    t = t_fn(yy, xx)
    hazy = clean * t[..., None] + airlight * (1 - t[..., None])
    return torch.from_numpy(hazy).permute(2, 0, 1)[None].float(), t


@pytest.mark.parametrize("t_fn", [lambda y, x: 0.1 + 0.85 * (0.6 * y + 0.4 * x),
                                  lambda y, x: 0.5 + 0.4 * np.sin(3 * y) * np.cos(4 * x)], ids=["ramp", "waves"])
def test_masks_recover_known_transmission_bins(t_fn):
    hazy, t = prior_exact_scene(t_fn)
    got = dcp.dcp_region_masks(hazy)[0].argmax(0).numpy()
    true_t = cv2.resize(t, (120, 120), interpolation=cv2.INTER_AREA)
    true = dcp.bin_masks(t64(true_t), 5)[0].argmax(0).numpy()
    assert (got == true).mean() >= 0.8
    assert (np.abs(got - true) <= 1).all()


def test_masks_track_transmission_on_photos():
    hazy, t = hazy_photo("rocket", beta=1.2)
    est = dcp.dcp_transmission(to_tensor(hazy))[0, 0].numpy()
    true_t = cv2.resize(t, est.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.corrcoef(est.ravel(), true_t.ravel())[0, 1] >= 0.9


def test_atmospheric_light_of_a_flat_small_image_uses_every_pixel():
    img = torch.rand(1, 3, 20, 30, dtype=torch.float64)  # the 223 x 223 min filter covers it all
    assert dcp.atmospheric_light_hist(img)[0, 0].item() == pytest.approx(img.mean(1).max().item())


def test_batch_equals_per_image_and_float64_close_to_float32():
    imgs = [to_tensor(hazy_photo(n, beta=b, size=(96, 128))[0]) for n, b in (("chelsea", 1.0), ("coffee", 1.5))]
    batch = dcp.dcp_region_masks(torch.cat(imgs))
    for i, img in enumerate(imgs):
        assert torch.equal(batch[i:i + 1], dcp.dcp_region_masks(img))
    m64 = dcp.dcp_region_masks(torch.cat(imgs).double())
    assert (m64.argmax(1) == batch.argmax(1)).float().mean() >= 0.995


def test_masks_have_quarter_resolution_and_accept_tiny_inputs():
    m = dcp.dcp_region_masks(torch.rand(2, 3, 64, 48))
    assert m.shape == (2, 5, 16, 12)
    tiny = dcp.dcp_region_masks(torch.rand(1, 3, 4, 4))
    assert tiny.shape == (1, 5, 1, 1) and tiny.sum().item() == 1


def test_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        dcp.dcp_region_masks(torch.rand(1, 1, 16, 16))


def test_atmospheric_light_skips_the_guided_filter_only_where_it_returns_a_flat_map():
    """Images smaller than the 223 x 223 window: the min filter is constant, and the guided filter the
    shortcut skips would return a map the histogram treats as flat, so A is the same."""
    img = torch.rand(2, 3, 60, 60, dtype=torch.float64)
    m = img.amin(dim=1, keepdim=True)
    p = dcp.min_filter(m, 223)
    refined = dcp.guided_filter(m, p, 111, 1e-3).reshape(2, -1)
    spread = refined.amax(1) - refined.amin(1)
    assert (spread <= 2 * 2000 * torch.finfo(torch.float64).eps * refined.amax(1).abs().clamp_min(1)).all()
    torch.testing.assert_close(dcp.atmospheric_light_hist(img)[:, 0], img.mean(1).reshape(2, -1).amax(1), rtol=0, atol=0)


@pytest.mark.parametrize("border", ["reflect101", "clip"])
@pytest.mark.parametrize("k", [1, 4, 15, 60, 111])
def test_box_filter_matrix_product_equals_running_sums(monkeypatch, border, k):
    x = torch.rand(2, 3, 37, 50, dtype=torch.float64)
    by_matrix = dcp.box_filter(x, k, border)
    monkeypatch.setattr(dcp, "MATMUL_BOX_MAX", 0)  # every axis by running sums
    torch.testing.assert_close(by_matrix, dcp.box_filter(x, k, border), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_in,n_out", [(240, 60), (462, 115), (37, 11), (20, 45), (5, 5)])
def test_banded_resampling_equals_the_dense_matrix_product(n_in, n_out):
    x = torch.rand(2, 3, n_in, 7, dtype=torch.float64)
    dense = torch.matmul(dcp._pil_resample_matrix(n_in, n_out), x)
    torch.testing.assert_close(dcp._resample(x, n_out, -2), dense, rtol=0, atol=1e-13)
    torch.testing.assert_close(dcp._resample(x.transpose(-1, -2), n_out, -1), dense.transpose(-1, -2), rtol=0, atol=1e-13)
