"""Each metric preset against an independent computation (scikit-image with matching settings,
MATLAB's published coefficients) on fixed image pairs."""
import warnings

import numpy as np
import pytest
import torch
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hdm.metrics import METRIC_PRESETS, get_metric, preset_options
from hdm.metrics.niqe import _GRAY as GRAY
from hdm.metrics.niqe import imresize_half, niqe_of_gray, pristine_model
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


@pytest.mark.parametrize("preset", [p for p in METRIC_PRESETS if p not in ("niqe", "ciede2000", "loe", "lpips")])
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


def live_niqe(grey, resize):
    """NIQE written from LIVE's MATLAB release (computequality, computefeature, estimateaggdparam), line by
    line, with MATLAB's semantics where a block is degenerate: mean([]) is NaN, `min` over NaN values
    returns the first index, and the NaN features of a block are dropped by nanmean and nancov (the
    complete rows). `resize` is MATLAB's imresize(., 0.5)."""
    from scipy.ndimage import correlate
    from scipy.special import gamma

    gam = np.arange(0.2, 10.0005, 0.001)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))

    def estimateaggdparam(vec):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            leftstd = np.sqrt(np.mean(vec[vec < 0] ** 2))   # NaN when there is no negative value
            rightstd = np.sqrt(np.mean(vec[vec > 0] ** 2))
            gammahat = leftstd / rightstd
            rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
            rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / (gammahat ** 2 + 1) ** 2
            diff = (r_gam - rhatnorm) ** 2
        alpha = gam[0 if np.isnan(diff).all() else np.nanargmin(diff)]
        scale = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
        return alpha, leftstd * scale, rightstd * scale

    def computefeature(block):
        alpha, betal, betar = estimateaggdparam(block.ravel(order="F"))
        feat = [alpha, (betal + betar) / 2]
        for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
            pair = block.ravel(order="F") * np.roll(block, shift, axis=(0, 1)).ravel(order="F")
            alpha, betal, betar = estimateaggdparam(pair)
            feat += [alpha, (betar - betal) * gamma(2 / alpha) / gamma(1 / alpha), betal, betar]
        return feat

    g = np.exp(-((np.arange(7) - 3) ** 2) / (2 * (7 / 6) ** 2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    im = grey[:grey.shape[0] // 96 * 96, :grey.shape[1] // 96 * 96].astype(np.float64)
    feats = []
    for scale in (1, 2):
        mu = correlate(im, window, mode="nearest")
        sigma = np.sqrt(np.abs(correlate(im * im, window, mode="nearest") - mu * mu))
        structdis = (im - mu) / (sigma + 1)
        b = 96 // scale
        feats.append(np.array([computefeature(structdis[r * b:(r + 1) * b, c * b:(c + 1) * b])
                               for c in range(im.shape[1] // b) for r in range(im.shape[0] // b)]))
        im = resize(im)
    feat = np.hstack(feats)
    mu_d = np.nanmean(feat, axis=0)
    cov_d = np.cov(feat[~np.isnan(feat).any(axis=1)], rowvar=False)
    mu_p, cov_p = pristine_model()
    return float(np.sqrt((mu_p - mu_d) @ np.linalg.pinv((cov_p + cov_d) / 2) @ (mu_p - mu_d))), feat


@pytest.mark.parametrize("convert", ["gray", "y"])
def test_niqe_with_flat_and_saturated_regions_follows_live(convert):
    rgb = data.astronaut().astype(np.float64)
    rgb[:192, 288:] = 0      # black and saturated areas covering whole blocks, as in enhanced images
    rgb[288:, :192] = 255
    grey = np.floor(rgb @ GRAY + 0.5) if convert == "gray" else matlab_y(rgb, rounded=True)
    want, feat = live_niqe(grey, imresize_half)
    assert np.isnan(feat).any(axis=1).sum() >= 4  # degenerate blocks are there: the NaN path is exercised
    x = torch.from_numpy(rgb / 255).permute(2, 0, 1)[None].float()
    assert get_metric("niqe", convert=convert)(x)["niqe"].item() == pytest.approx(want, abs=1e-9)


def test_niqe_of_astronaut_follows_live_in_double_precision():
    """astronaut (its black background is flat at scale 2): LIVE's computation in double precision.
    BasicSR 1.4.2 gives 3.0649 with Y because its imresize runs in float32 (near-flat blocks move);
    with a float64 resize its port gives our value to 1e-13 (run outside this repository)."""
    rgb = data.astronaut().astype(np.float64)
    x = torch.from_numpy(rgb / 255).permute(2, 0, 1)[None].float()
    for convert, grey in (("gray", np.floor(rgb @ GRAY + 0.5)), ("y", matlab_y(rgb, rounded=True))):
        assert get_metric("niqe", convert=convert)(x)["niqe"].item() == pytest.approx(live_niqe(grey, imresize_half)[0],
                                                                                       abs=1e-9)


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


def test_loe_follows_its_definition():
    from hdm.metrics.loe import lightness_order_error
    rng = np.random.default_rng(0)
    lq = rng.random((1, 3, 50, 60)) * 0.3          # shorter side 50: no resampling (MATLAB imresize at scale 1)
    out = np.clip(lq * 3 + rng.normal(0, 0.05, lq.shape), 0, 1)
    light = lambda x: np.floor(x[0].max(0) * 255 + 0.5).ravel()  # noqa: E731 - max(R, G, B) as uint8 levels
    a, b = light(lq), light(out)
    want = sum(((a[i] >= a) ^ (b[i] >= b)).sum() for i in range(a.size)) / a.size  # the double sum, as written
    got = get_metric("loe")(torch.from_numpy(out), None, lq=torch.from_numpy(lq))["loe"].item()
    assert got == pytest.approx(want, abs=1e-9) and got > 10
    # an enhancement that keeps the lightness order (x3 on uint8 levels: equal stay equal, none clips) has none
    levels = torch.from_numpy(np.floor(lq * 255 + 0.5) / 255)
    assert get_metric("loe")(levels * 3, None, lq=levels)["loe"].item() == 0
    assert lightness_order_error(np.array([[1.0, 2.0]]), np.array([[2.0, 1.0]])) == 1.0  # each pixel: one flipped pair
    from hdm.metrics.reference import imresize
    big, enhanced = torch.rand(1, 3, 120, 200, dtype=torch.float64), torch.rand(1, 3, 120, 200, dtype=torch.float64)
    small = [imresize(np.floor(x[0].numpy().max(0) * 255 + 0.5), (50, 83)) for x in (big, enhanced)]  # 50 / 120
    assert get_metric("loe")(enhanced, None, lq=big)["loe"].item() == pytest.approx(lightness_order_error(*small))
    with pytest.raises(ValueError, match="needs the degraded input"):
        get_metric("loe")(big, None)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_from_local_weight_files(tmp_path, net):
    """Random weights in torchvision's and LPIPS's file layouts (no real ones can be had offline): the
    preset equals LPIPS v0.1 written out with F.conv2d, is 0 for equal images, and without a file says
    which one is missing."""
    import torch.nn.functional as F

    from .helpers import lpips_weight_files

    torch.manual_seed(0)
    opts = lpips_weight_files(tmp_path, net)
    backbone, lins = torch.load(opts["backbone_path"]), torch.load(opts["lin_path"])
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    got = get_metric("lpips", **opts)(a, b)["lpips"]

    def taps(x):  # the five feature maps, by the definition
        x = (2 * x - 1 - torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)) / torch.tensor(
            [0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        out = []
        if net == "alex":
            spec = [(0, 4, 2, True), (3, 1, 2, True), (6, 1, 1, False), (8, 1, 1, False), (10, 1, 1, False)]
            for idx, stride, pad, pool in spec:
                x = F.relu(F.conv2d(x, backbone[f"features.{idx}.weight"], backbone[f"features.{idx}.bias"], stride, pad))
                out.append(x)
                if pool:
                    x = F.max_pool2d(x, 3, 2)
            return out
        idx = 0
        for n in (2, 2, 3, 3, 3):
            for _ in range(n):
                x = F.relu(F.conv2d(x, backbone[f"features.{idx}.weight"], backbone[f"features.{idx}.bias"], 1, 1))
                idx += 2
            out.append(x)
            x, idx = F.max_pool2d(x, 2, 2), idx + 1
        return out
    want = 0
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b))):
        na, nb = fa / (fa.norm(dim=1, keepdim=True) + 1e-10), fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        want = want + ((na - nb) ** 2 * lins[f"lin{k}.model.1.weight"]).sum(1).mean(dim=(1, 2))
    assert torch.allclose(got, want.double(), rtol=1e-4, atol=1e-7) and (got > 0).all()
    assert get_metric("lpips", **opts)(a, a)["lpips"].abs().max() < 1e-6
    with pytest.raises(FileNotFoundError, match="lpips needs LPIPS v0.1 linear weights"):
        get_metric("lpips", net=net, backbone_path=opts["backbone_path"], lin_path=str(tmp_path / "none.pth"))
