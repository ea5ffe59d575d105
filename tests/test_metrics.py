"""fairsplat.metrics: image metrics against scikit-image, the registry, ITA / delta-ITA, NME.

Registry tests are parametrised over ``METRICS`` (PEFT's TEST_CASES pattern): a new
entry is checked for identity, direction under degradation, masks and gradients
without new test code. LPIPS entries skip (with the reason) where their module or
weights are absent, after checking they are reported as absent, not guessed.
"""

import numpy as np
import pytest
import torch
from skimage import data, transform
from skimage.color import lab2rgb
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fairsplat.metrics import image as im
from fairsplat.metrics.colour import delta_ita, ita
from fairsplat.metrics.landmarks import nme, nme_reference
from fairsplat.metrics.registry import METRICS, Absent, compute, compute_all

pytestmark = pytest.mark.usefixtures("one_thread")


def _nchw(x: np.ndarray) -> torch.Tensor:  # [H, W, 3] float -> [1, 3, H, W]
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:  # float64 [128, 128, 3] in [0, 1]
    return transform.resize(data.astronaut(), (128, 128), anti_aliasing=True)


def _noisy(x: np.ndarray, sd: float = 0.05, seed: int = 0) -> np.ndarray:
    return np.clip(x + np.random.default_rng(seed).normal(0, sd, x.shape), 0, 1)


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=-1)  # fmt: skip


def _images(kind: str, astronaut: np.ndarray) -> np.ndarray:
    return astronaut if kind == "natural" else np.random.default_rng(1).random((64, 80, 3))


# --- PSNR / SSIM against scikit-image -------------------------------------------------------


@pytest.mark.parametrize("kind", ["natural", "random"])
def test_psnr_and_ssim_match_skimage(kind, astronaut):
    a = _images(kind, astronaut)
    b = _noisy(a)
    A, B = _nchw(a), _nchw(b)  # float64
    assert im.psnr(B, A).item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-9)
    assert im.ssim(B, A).item() == pytest.approx(_skimage_ssim(a, b), abs=1e-9)
    assert im.ssim(B.float(), A.float()).item() == pytest.approx(_skimage_ssim(a, b), abs=1e-5)


def test_ssim_map_matches_kornia(astronaut):
    import kornia

    A, B = _nchw(astronaut).float(), _nchw(_noisy(astronaut)).float()
    torch.testing.assert_close(im.ssim_maps(B, A)[0], kornia.metrics.ssim(B, A, 11, padding="valid"), atol=1e-5, rtol=0)


def test_uint8_arrays_pass_through(astronaut):
    a8 = (astronaut * 255).round().astype(np.uint8)
    b8 = (_noisy(astronaut) * 255).round().astype(np.uint8)
    assert compute("psnr", b8, a8)[0] == pytest.approx(peak_signal_noise_ratio(a8, b8), abs=1e-4)


def test_masked_psnr_is_psnr_of_the_masked_pixels(astronaut):
    a, b = astronaut, _noisy(astronaut)
    mask = np.zeros((128, 128), bool)
    mask[30:90, 40:100] = True
    ref = 10 * np.log10(1 / ((a - b)[mask] ** 2).mean())
    assert compute("psnr", _nchw(b), _nchw(a), mask)[0] == pytest.approx(ref, rel=1e-5)


def test_ms_ssim_scales_at_project_sizes():
    assert [im.ms_ssim_scales(s, s) for s in (10, 11, 21, 22, 64, 128, 175, 176, 512)] == [0, 1, 1, 2, 3, 4, 4, 5, 5]
    out = compute_all(torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128), names=["ms_ssim"])
    assert out["ms_ssim_scales"].tolist() == [4, 4]


# --- the registry ---------------------------------------------------------------------------


def _values_or_skip(name: str, pred, target, mask=None) -> np.ndarray:
    out = compute(name, pred, target, mask)
    if isinstance(out, Absent):
        assert METRICS[name].weights is not None, f"{name} needs no weights but is absent: {out.reason}"
        assert out.reason
        pytest.skip(out.reason)
    return out


@pytest.mark.parametrize("name", list(METRICS))
def test_identical_images_give_the_best_value(name, astronaut):
    a = _nchw(astronaut).float()
    v = _values_or_skip(name, a, a)
    best = {"dB": 100.0}.get(METRICS[name].unit, 1.0 if METRICS[name].higher_is_better else 0.0)
    np.testing.assert_allclose(v, best, atol=1e-4)


@pytest.mark.parametrize("degrade", ["noise", "blur"])
@pytest.mark.parametrize("name", list(METRICS))
def test_degradation_moves_every_metric_the_right_way(name, degrade, astronaut):
    a = _nchw(astronaut).float()
    if degrade == "noise":
        mild, strong = _nchw(_noisy(astronaut, 0.03)).float(), _nchw(_noisy(astronaut, 0.15)).float()
    else:
        from torchvision.transforms.functional import gaussian_blur

        mild, strong = gaussian_blur(a, 5, 1.0), gaussian_blur(a, 15, 4.0)
    v_mild = _values_or_skip(name, mild, a)[0]
    v_strong = _values_or_skip(name, strong, a)[0]
    better = v_mild > v_strong if METRICS[name].higher_is_better else v_mild < v_strong
    assert better, (name, degrade, v_mild, v_strong)


@pytest.mark.parametrize("name", [n for n, m in METRICS.items() if m.masked])
def test_all_ones_mask_equals_unmasked(name, astronaut):
    a, b = _nchw(astronaut).float(), _nchw(_noisy(astronaut)).float()
    full = _values_or_skip(name, b, a)
    rtol = 1e-5 if METRICS[name].weights is None else 1e-3  # LPIPS: a masked map is upsampled (~1e-4 rounding)
    np.testing.assert_allclose(_values_or_skip(name, b, a, torch.ones(1, 1, 128, 128)), full, rtol=rtol, atol=1e-6)


def test_an_empty_mask_gives_nan_for_that_image_only(astronaut):
    a, b = _nchw(astronaut).float(), _nchw(_noisy(astronaut)).float()
    mask = torch.ones(2, 1, 128, 128)
    mask[1] = 0
    out = compute_all(torch.cat([b, b]), torch.cat([a, a]), mask)
    for name in (n for n, m in METRICS.items() if m.masked):
        if not isinstance(out[f"{name}_masked"], Absent):
            assert np.isfinite(out[f"{name}_masked"][0]) and np.isnan(out[f"{name}_masked"][1]), name


@pytest.mark.parametrize("name", [n for n, m in METRICS.items() if m.differentiable])
def test_gradients_flow(name, astronaut):
    a = _nchw(astronaut).float()
    pred = _nchw(_noisy(astronaut)).float().requires_grad_(True)
    _values_or_skip(name, pred.detach(), a)  # skips absent metrics
    out = METRICS[name].fn(pred, a, None)
    assert out.shape == (1,)
    out.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_compute_all_keys_and_absent_lpips():
    pred, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = compute_all(pred, target, mask=torch.ones(2, 1, 32, 32))
    assert set(out) == {*METRICS, *(f"{n}_masked" for n, m in METRICS.items() if m.masked), "ms_ssim_scales"}
    for name, v in out.items():
        assert isinstance(v, Absent) or v.shape == (2,), name
    for name in ("psnr", "ssim", "ms_ssim"):
        assert isinstance(out[name], np.ndarray)


def test_lpips_absent_without_weights(monkeypatch):
    """Missing weights are an Absent with a reason, never a number."""
    lpips = pytest.importorskip("fairsplat.metrics.lpips", reason="fairsplat/metrics/lpips.py not written yet")
    from fairsplat.weights import WeightsMissing

    def missing(*a, **k):
        raise WeightsMissing("lpips_alex: not in the weights store")

    monkeypatch.setattr(lpips, "lpips_distance", missing)
    out = compute("lpips_alex", torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert isinstance(out, Absent) and "lpips_alex" in out.reason


# --- ITA / delta-ITA ------------------------------------------------------------------------


def _patch(L: float, b: float, a: float = 12.0, n: int = 40) -> np.ndarray:  # uint8 [n, n, 3] of one CIELAB colour
    rgb = lab2rgb(np.array([[[L, a, b]]], float))
    return np.broadcast_to((rgb * 255).round().astype(np.uint8), (n, n, 3)).copy()


def test_ita_of_painted_patches():
    """Exactly the published formula on the (8-bit) patch colour; near the nominal CIELAB colour's ITA."""
    from skimage.color import rgb2lab

    patches = np.stack([_patch(70, 15), _patch(40, 22)])
    got = ita(patches, np.ones((2, 40, 40), bool))
    lab = rgb2lab(patches[:, 0, 0] / 255.0)  # [2, 3]
    np.testing.assert_allclose(got, np.degrees(np.arctan((lab[:, 0] - 50) / lab[:, 2])), atol=1e-9)
    np.testing.assert_allclose(got, np.degrees(np.arctan2([20, -10], [15, 22])), atol=1.0)


def test_delta_ita_sign_and_size():
    """A lighter output gives positive delta-ITA of the known size; float tensors agree with uint8."""
    from fairsplat.faces.ita import ita_of_rgb

    light, dark = _patch(62, 25), _patch(45, 25)
    want = float(ita_of_rgb(light[0, 0]) - ita_of_rgb(dark[0, 0]))  # the 8-bit colours' exact delta
    assert want == pytest.approx(np.degrees(np.arctan2(12, 25) - np.arctan2(-5, 25)), abs=1.0)  # ~ nominal
    mask = np.ones((1, 40, 40), bool)
    assert delta_ita(light[None], dark[None], mask)[0] == pytest.approx(want, abs=1e-9)
    assert delta_ita(dark[None], light[None], mask)[0] == pytest.approx(-want, abs=1e-9)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    assert delta_ita(t(light), t(dark), torch.ones(1, 1, 40, 40))[0] == pytest.approx(want, abs=1e-9)


def test_ita_none_for_tiny_masks():
    mask = np.zeros((1, 40, 40), bool)
    mask[0, :3, :3] = True
    assert ita(_patch(60, 15)[None], mask) == [None]
    assert delta_ita(_patch(60, 15)[None], _patch(50, 15)[None], mask) == [None]


# --- NME ------------------------------------------------------------------------------------


def test_nme_matches_the_slow_loop():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 30, (5, 68, 2))
    pred = ref + rng.normal(0, 2, ref.shape)
    mask = rng.random((5, 68)) > 0.3
    mask[4] = False  # no landmark: NaN
    np.testing.assert_allclose(nme(pred, ref), nme_reference(pred, ref))
    np.testing.assert_allclose(nme(pred, ref, mask), nme_reference(pred, ref, mask))
    assert np.isnan(nme(pred, ref, mask)[4])
