"""Each metric preset against an independent computation (scikit-image with matching settings,
MATLAB's published coefficients) on fixed image pairs."""
import numpy as np
import pytest
import torch
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hdm.metrics import METRIC_PRESETS, get_metric, preset_options
from hdm.metrics.niqe import imresize_half, niqe_of_gray
from hdm.metrics.reference import matlab_y


def pair(seed=0, size=(64, 80), noise=0.06):
    gt = data.astronaut()[100:100 + size[0], 150:150 + size[1]].astype(np.float64) / 255
    out = np.clip(gt + np.random.default_rng(seed).normal(0, noise, gt.shape), 0, 1)
    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    return t(out), t(gt)


def u8(x):
    """The uint8 levels the presets quantise to, computed independently (np.round of the float32 tensor)."""
    return np.round(x[0].permute(1, 2, 0).double().numpy() * 255)


def wang_ssim(a, b, peak=255):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=peak)


def test_matlab_rgb2ycbcr_coefficients():
    rgb = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.float64)
    np.testing.assert_allclose(matlab_y(rgb, rounded=False), [235.0, 16.0, 81.481, 144.553, 40.966], atol=1e-9)
    np.testing.assert_array_equal(matlab_y(rgb, rounded=True), [235, 16, 81, 145, 41])


@pytest.mark.parametrize("rounded,preset", [(True, "matlab_y_uint8"), (False, "matlab_y_double")])
def test_matlab_y_presets(rounded, preset):
    out, gt = pair()
    yo = 16 + u8(out) @ np.array([65.481, 128.553, 24.966]) / 255
    yg = 16 + u8(gt) @ np.array([65.481, 128.553, 24.966]) / 255
    if rounded:
        yo, yg = np.round(yo), np.round(yg)
    got = get_metric(preset)(out, gt)
    assert got["psnr"].item() == pytest.approx(peak_signal_noise_ratio(yg, yo, data_range=255), abs=1e-9)
    assert got["ssim"].item() == pytest.approx(wang_ssim(yo, yg), abs=1e-6)


@pytest.mark.parametrize("y,crop", [(False, 0), (True, 4)])
def test_basicsr_preset(y, crop):
    out, gt = pair(1)
    o, g = u8(out), u8(gt)
    if y:
        o = (16 + o @ np.array([65.481, 128.553, 24.966]) / 255)[..., None]
        g = (16 + g @ np.array([65.481, 128.553, 24.966]) / 255)[..., None]
    if crop:
        o, g = o[crop:-crop, crop:-crop], g[crop:-crop, crop:-crop]
    got = get_metric("basicsr", y=y, crop_border=crop)(out, gt)
    assert got["psnr"].item() == pytest.approx(peak_signal_noise_ratio(g, o, data_range=255), abs=1e-9)
    want = np.mean([wang_ssim(o[..., c], g[..., c]) for c in range(o.shape[2])])
    assert got["ssim"].item() == pytest.approx(want, abs=1e-6)


def test_lol_rgb_preset_and_gt_mean():
    out, gt = pair(2)
    got = get_metric("lol_rgb")(out, gt)
    o, g = u8(out), u8(gt)
    assert got["psnr"].item() == pytest.approx(peak_signal_noise_ratio(g, o, data_range=255), abs=1e-9)
    assert got["ssim"].item() == pytest.approx(np.mean([wang_ssim(o[..., c], g[..., c]) for c in range(3)]), abs=1e-6)
    diff2 = (color.rgb2hsv(o / 255) - color.rgb2hsv(g / 255)) ** 2
    want = [diff2[..., 0].mean(), diff2[..., 1].mean(), diff2[..., 2].mean() * 255 ** 2]
    assert [got[k].item() for k in ("mse_h", "mse_s", "mse_v")] == pytest.approx(want, abs=1e-9)
    assert got["mse_hsv"].item() == pytest.approx(np.mean(want), abs=1e-9)  # Table III: the mean of the three
    dim = gt * 0.5  # a correct image at half brightness: GT-mean alignment undoes the global scale
    plain, aligned = get_metric("lol_rgb")(dim, gt), get_metric("lol_rgb", gt_mean=True)(dim, gt)
    assert aligned["psnr"].item() > plain["psnr"].item() + 10


def test_ffa_rgb_differs_from_matlab_ssim_by_its_padding():
    out, gt = pair(3)
    assert get_metric("ffa_rgb")(out, gt)["ssim"].item() > get_metric("basicsr")(out, gt)["ssim"].item()


@pytest.mark.parametrize("preset", [p for p in METRIC_PRESETS if p not in ("niqe", "ciede2000")])
def test_identical_images(preset):
    _, gt = pair()
    got = get_metric(preset)(gt, gt)
    assert got["psnr"].item() == 100.0 and got["ssim"].item() == pytest.approx(1.0, abs=1e-12)


def test_options_are_checked():
    assert preset_options("basicsr") == ["y", "crop_border"]
    with pytest.raises(ValueError, match="no option"):
        get_metric("ffa_rgb", y=True)


# NIQE of scikit-image photos (grey = MATLAB rgb2gray of the uint8 image, rounded), as computed by
# BasicSR 1.4.2's `niqe` (an independent Python port of LIVE's MATLAB release) on the same grey images.
BASICSR_NIQE = {"astronaut": 3.0672536, "chelsea": 2.5720842, "coffee": 4.0584654, "camera": 3.0962203}


@pytest.mark.parametrize("name", sorted(BASICSR_NIQE))
def test_niqe_matches_an_independent_port(name):
    img = getattr(data, name)().astype(np.float64)
    grey = np.floor(img @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5) if img.ndim == 3 else img
    assert niqe_of_gray(grey) == pytest.approx(BASICSR_NIQE[name], abs=2e-3)


def test_niqe_preset_and_its_sense():
    x = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    assert get_metric("niqe")(x)["niqe"].item() == pytest.approx(BASICSR_NIQE["chelsea"], abs=2e-3)
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)
    assert get_metric("niqe")(blurred)["niqe"].item() > get_metric("niqe")(x)["niqe"].item() + 1  # blur is unnatural
    assert get_metric("niqe", convert="y")(x)["niqe"].item() != get_metric("niqe")(x)["niqe"].item()
    with pytest.raises(ValueError, match="96"):
        get_metric("niqe")(torch.rand(1, 3, 50, 200))


def test_imresize_half_keeps_constants_and_averages_neighbours():
    np.testing.assert_allclose(imresize_half(np.full((9, 10), 7.0)), np.full((5, 5), 7.0), atol=1e-12)
    ramp = np.tile(np.arange(16, dtype=np.float64), (4, 1))
    # away from the borders a half-size bicubic of a linear ramp samples it between pixel pairs
    np.testing.assert_allclose(imresize_half(ramp)[0, 2:6], [4.5, 6.5, 8.5, 10.5], atol=1e-9)


def test_ciede2000_equals_scikit_image_and_the_published_pairs():
    from hdm.metrics.color import delta_e_2000
    # four of Sharma, Wu and Dalal's (2005) test pairs, with their published Delta E_00
    lab1 = np.array([[50, 2.6772, -79.7751], [50, 0, 0], [50, 2.5, 0], [60.2574, -34.0099, 36.2677]])
    lab2 = np.array([[50, 0, -82.7485], [50, -1, 2], [73, 25, -18], [60.4626, -34.1751, 39.4387]])
    assert np.allclose(delta_e_2000(lab1, lab2), [2.0425, 2.3669, 27.1492, 1.2644], atol=5e-5)
    img = data.astronaut()[:96, :128].astype(np.float64) / 255
    other = np.round(np.clip(img + np.random.default_rng(0).normal(0, 0.05, img.shape), 0, 1) * 255) / 255
    got = get_metric("ciede2000")(torch.from_numpy(img.transpose(2, 0, 1))[None],
                                  torch.from_numpy(other.transpose(2, 0, 1))[None])["ciede2000"]
    want = color.deltaE_ciede2000(color.rgb2lab(img), color.rgb2lab(other)).mean()
    assert abs(float(got[0]) - want) < 1e-10 and want > 1
    assert float(get_metric("ciede2000")(torch.from_numpy(img.transpose(2, 0, 1))[None],
                                         torch.from_numpy(img.transpose(2, 0, 1))[None])["ciede2000"][0]) == 0
