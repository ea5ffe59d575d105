"""Photo loading: every awkward file becomes RGB uint8 or a one-word reason, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fairsplat.testing.badfiles import ZOO, png_bytes, write_zoo
from fairsplat.io.photos import REASONS, BadImage, is_greyscale_rgb, load_photo
from fairsplat.testing.testcard import paint


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    card = paint(128, shade=True)
    return card, write_zoo(tmp_path_factory.mktemp("zoo"), card.image)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_file_loads_or_gives_its_reason(zoo, name):
    card, files = zoo
    path, expected = files[name]
    if expected in REASONS:  # a loader-level reason
        with pytest.raises(BadImage) as err:
            load_photo(path, allow_greyscale=False)
        assert err.value.reason == expected
        return
    rgb, info = load_photo(path, allow_greyscale=False)  # handled here (no_face is decided later)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    if expected is None:  # a converted copy of the card: same picture within codec error
        assert rgb.shape == card.image.shape
        assert np.abs(rgb.astype(int) - card.image).mean() < 2.0, name


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    grey16 = np.array([[0, 257 * 64, 32768, 65535]], np.uint16).repeat(40, 0).repeat(10, 1)  # [40, 40]
    Image.fromarray(grey16).save(tmp_path / "g16.png")  # PIL writes mode I;16
    rgb, info = load_photo(tmp_path / "g16.png")
    assert info.mode.startswith("I") and info.bit_depth == 16 and info.is_greyscale
    assert rgb[0, ::10, 0].tolist() == [0, 64, 128, 255]  # 65535 -> 255, not clipped at 255/65535
    colour = np.random.default_rng(0).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    (tmp_path / "c16.png").write_bytes(png_bytes(colour, bit_depth=16))
    rgb, info = load_photo(tmp_path / "c16.png")
    assert info.bit_depth == 16 and np.array_equal(rgb, colour)


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:5, :5] = (255, 0, 0)  # red marker top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 deg clockwise
    Image.fromarray(img).save(tmp_path / "r.jpg", quality=95, exif=exif.tobytes())
    rgb, info = load_photo(tmp_path / "r.jpg")
    assert info.orientation == 6 and rgb.shape == (60, 40, 3) and (info.width, info.height) == (40, 60)
    assert rgb[2, -3, 0] > 200 and rgb[2, -3, 1] < 60  # marker now top-right


def test_alpha_is_returned_not_dropped(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)
    rgba[10:30, 10:30, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    rgb, info = load_photo(tmp_path / "a.png")
    assert np.array_equal(info.alpha, rgba[..., 3]) and np.array_equal(rgb, rgba[..., :3])
    Image.fromarray(np.dstack([rgba[..., :3], np.full((40, 40), 255, np.uint8)])).save(tmp_path / "opaque.png")
    assert load_photo(tmp_path / "opaque.png")[1].alpha is None  # all-opaque alpha carries nothing


def test_cmyk_converts_to_matching_rgb(tmp_path):
    rgb0 = np.zeros((40, 40, 3), np.uint8)
    rgb0[:] = (200, 150, 120)
    Image.fromarray(rgb0).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    rgb, info = load_photo(tmp_path / "c.jpg")
    assert info.mode == "CMYK" and np.abs(rgb.astype(int) - rgb0).max() <= 3


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_unreadable_paths(tmp_path, what):
    path = tmp_path / "x.jpg"
    if what == "directory":
        path.mkdir()
    with pytest.raises(BadImage) as err:
        load_photo(path)
    assert err.value.reason == "unreadable"


def test_size_limits_are_params(tmp_path):
    Image.new("RGB", (100, 50), (200, 150, 120)).save(tmp_path / "s.png")
    assert load_photo(tmp_path / "s.png", min_side=50)[0].shape == (50, 100, 3)
    with pytest.raises(BadImage, match="too_small"):
        load_photo(tmp_path / "s.png", min_side=51)
    with pytest.raises(BadImage, match="too_large"):
        load_photo(tmp_path / "s.png", max_pixels=4999)


def test_greyscale_check_tolerates_jpeg_chroma_noise():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (64, 64, 1)).repeat(3, 2)
    noisy = np.clip(grey + rng.integers(-3, 4, grey.shape), 0, 255).astype(np.uint8)
    assert is_greyscale_rgb(noisy)
    skin = np.broadcast_to(np.array([200, 150, 120], np.uint8), (64, 64, 3))
    assert not is_greyscale_rgb(skin)
