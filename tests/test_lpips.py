"""LPIPS with real weights, against a slow plain-torch reference and the lpips package itself.

Tests that need the weight files skip with the fetch command when they are absent
(``make test`` runs ``make env``, which fetches them).
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data, transform

from fairsplat.metrics import lpips as lp
from fairsplat.metrics.lpips import NETS, lpips_distance, lpips_model, lpips_or_absent
from fairsplat.weights import store
from fairsplat.weights.backbones import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 128
SIGMAS = (1.0, 2.0, 4.0)


def _need(net: str) -> str:
    name = NETS[net][0]
    if not store.available(name):
        pytest.skip(f"{name} not fetched: run `{store.fetch_command(name)}`")
    return name


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:  # [1, 3, SIZE, SIZE] in [0, 1]
    img = transform.resize(data.astronaut(), (SIZE, SIZE), anti_aliasing=True).astype(np.float32)
    return torch.from_numpy(img).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def blurred(astronaut: torch.Tensor) -> torch.Tensor:  # [3, 3, SIZE, SIZE], one per sigma
    img = astronaut[0].permute(1, 2, 0).numpy()
    return torch.stack([torch.from_numpy(gaussian_filter(img, sigma=(s, s, 0))).permute(2, 0, 1) for s in SIGMAS])


def reference_lpips(pred: torch.Tensor, target: torch.Tensor, net: str) -> torch.Tensor:  # [B]
    """The paper's formula in plain torch on the same backbone taps: ImageNet-normalise,
    unit-normalise channels, squared difference, 1x1 lin weights (numpy, from the file),
    spatial mean, sum over layers."""
    name, _ = NETS[net]
    params = store.load(name)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    backbone = lpips_model(net).net
    total = torch.zeros(pred.shape[0])
    for k, (f0, f1) in enumerate(zip(backbone((pred - mean) / std), backbone((target - mean) / std))):
        n0 = f0 / (f0.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)  # [B, C, h, w]
        n1 = f1 / (f1.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        w = torch.from_numpy(params[f"NetLinLayer_{k}/Conv_0/kernel"].reshape(-1))  # [C]
        total += ((n0 - n1) ** 2 * w.view(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
    return total


@pytest.mark.parametrize("net", sorted(NETS))
def test_identical_images_give_zero(net: str, astronaut: torch.Tensor) -> None:
    _need(net)
    assert abs(float(lpips_distance(astronaut, astronaut, net))) < 1e-6


@pytest.mark.parametrize("net", sorted(NETS))
def test_grows_with_blur(net: str, astronaut: torch.Tensor, blurred: torch.Tensor) -> None:
    _need(net)
    d = lpips_distance(blurred, astronaut.expand_as(blurred), net)  # [3]
    assert d[0] < d[1] < d[2], d
    assert d[2] > 0.3, f"sigma 4 gave {d[2]:.3f}: a random backbone gives ~0.01"


@pytest.mark.parametrize("net", sorted(NETS))
def test_matches_plain_torch_reference(net: str, astronaut: torch.Tensor, blurred: torch.Tensor) -> None:
    _need(net)
    target = astronaut.expand_as(blurred)
    with torch.no_grad():
        torch.testing.assert_close(lpips_distance(blurred, target, net), reference_lpips(blurred, target, net), rtol=0, atol=1e-5)


@pytest.mark.parametrize("net", sorted(NETS))
def test_lin_layers_equal_the_lpips_wheel(net: str) -> None:
    import lpips

    name = _need(net)
    params = store.load(name)
    wheel = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth", map_location="cpu")
    for k in range(5):
        ours = torch.from_numpy(params[f"NetLinLayer_{k}/Conv_0/kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
        assert torch.equal(ours, wheel[f"lin{k}.model.1.weight"]), f"lin{k}"


@pytest.mark.filterwarnings("ignore:.*deprecated since 0.13:UserWarning")  # lpips passes torchvision `pretrained=`
@pytest.mark.parametrize("net", sorted(NETS))
def test_masked_map_is_the_packages_spatial_mode(net: str, astronaut: torch.Tensor, blurred: torch.Tensor) -> None:
    """Masked LPIPS = mask-weighted mean of ``lpips.LPIPS(spatial=True)``'s map; all-ones = unmasked."""
    import lpips

    _need(net)
    spatial = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, use_dropout=False, spatial=True, verbose=False)
    spatial.load_state_dict(lpips_model(net).state_dict())
    target = astronaut.expand_as(blurred)
    mask = torch.zeros(3, 1, SIZE, SIZE)
    mask[:, :, 20:100, 30:90] = torch.rand(3, 1, 80, 60)
    with torch.no_grad():
        full = spatial(2 * blurred - 1, 2 * target - 1)  # [B, 1, H, W]
        want = (full * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3))
        torch.testing.assert_close(lpips_distance(blurred, target, net, mask=mask), want, rtol=1e-5, atol=1e-6)
        ones = lpips_distance(blurred, target, net, mask=torch.ones(3, 1, SIZE, SIZE))
        torch.testing.assert_close(ones, lpips_distance(blurred, target, net), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("net", sorted(NETS))
def test_mask_scores_only_its_region(net: str, astronaut: torch.Tensor) -> None:
    _need(net)
    damaged = astronaut.clone()
    damaged[..., : SIZE // 2] = torch.rand(1, 3, SIZE, SIZE // 2)  # noise on the left half only
    left, right = torch.zeros(1, 1, SIZE, SIZE), torch.zeros(1, 1, SIZE, SIZE)
    left[..., : SIZE // 2], right[..., SIZE // 2 :] = 1, 1
    on, off = lpips_distance(damaged, astronaut, net, mask=left), lpips_distance(damaged, astronaut, net, mask=right)
    assert float(on) > 3 * float(off)


@pytest.mark.parametrize("net", sorted(NETS))
def test_gradients_reach_the_input_only(net: str, astronaut: torch.Tensor, blurred: torch.Tensor) -> None:
    _need(net)
    pred = blurred[:1].clone().requires_grad_(True)
    (lpips_distance(pred, astronaut, net) + lpips_distance(pred, astronaut, net, mask=torch.ones(1, 1, SIZE, SIZE))).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in lpips_model(net).parameters())
    assert not lpips_model(net).training and lpips_model(net) is lpips_model(net, "cpu")


@pytest.fixture
def fresh_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty model cache for one test (the module's cached models come back after)."""
    monkeypatch.setattr(lp, "_model", functools.cache(lp._model.__wrapped__))


@pytest.mark.usefixtures("fresh_models")
@pytest.mark.filterwarnings("error")  # also: no torchvision deprecation noise reaches callers
def test_model_builds_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    _need("alex")

    def refuse(*args: object) -> None:
        raise AssertionError(f"network access while building LPIPS: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert isinstance(lpips_model("alex"), torch.nn.Module)


@pytest.mark.usefixtures("fresh_models")
def test_absent_weights_give_none_and_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(store.ENV_DIR, str(tmp_path))
    x = torch.rand(1, 3, 32, 32)
    value, reason = lpips_or_absent(x, x, net="vgg")
    assert value is None
    assert "LPIPS-vgg absent" in reason and "python -m fairsplat.weights fetch lpips_vgg" in reason


@pytest.mark.parametrize(
    "pred, target, mask, message",
    [
        (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 48), None, r"both be \[B, 3, H, W\]"),
        (torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64), None, r"both be \[B, 3, H, W\]"),
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), None, "at least 32 px"),
        (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), torch.ones(2, 3, 64, 64), r"mask must be \[B, 1, H, W\]"),
    ],
)
def test_bad_inputs_are_refused(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lpips_distance(pred, target, mask=mask)


def test_empty_mask_is_refused(astronaut: torch.Tensor) -> None:
    _need("alex")
    with pytest.raises(ValueError, match=r"mask is empty for batch item\(s\) \[0\]"):
        lpips_distance(astronaut, astronaut, mask=torch.zeros(1, 1, SIZE, SIZE))
