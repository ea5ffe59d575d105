"""The frozen encoder trunk's feature store: stored levels equal fresh ones, are computed once, and never go stale."""

import pytest
import torch

from fairsplat.models.feature_store import FeatureStore, attach_store, stored_encoders

pytestmark = pytest.mark.usefixtures("one_thread")


def _levels(x):  # a stand-in trunk: two levels of a fixed function of the image
    return [x.mean(1, keepdim=True).half().float(), (x[:, :2] * 3).half().float()]


def test_store_computes_each_image_once_and_reads_back_from_disk(tmp_path):
    calls = []

    def compute(x):
        calls.append(len(x))
        return _levels(x)

    x = torch.rand(5, 3, 8, 8)
    store = FeatureStore(tmp_path, "sig")
    first = store.get(x, compute)
    again = store.get(torch.cat([x[3:], x[:1]]), compute)  # seen images, another order
    assert calls == [5] and store.computed == 5
    for a, b in zip(again, _levels(torch.cat([x[3:], x[:1]]))):
        assert torch.equal(a, b)
    fresh = FeatureStore(tmp_path, "sig")  # a new process: nothing in memory, everything on disk
    back = fresh.get(x, compute)
    assert calls == [5] and fresh.computed == 0
    for a, b in zip(back, first):
        assert torch.equal(a, b)


def test_store_keys_depend_on_signature_and_damaged_entries_are_recomputed(tmp_path):
    x = torch.rand(2, 3, 8, 8)
    a = FeatureStore(tmp_path, "trunk-a")
    a.get(x, _levels)
    b = FeatureStore(tmp_path, "trunk-b")  # another trunk never reads trunk-a's entries
    b.get(x, lambda t: [torch.zeros(len(t), 1, 2, 2)])
    assert b.computed == 2 and a.dir != b.dir
    victim = next(a.dir.glob("*.safetensors"))
    victim.write_bytes(b"not a safetensors file")
    c = FeatureStore(tmp_path, "trunk-a")
    out = c.get(x, _levels)
    assert c.computed == 1  # the damaged one, recomputed; the other read
    for u, v in zip(out, _levels(x)):
        assert torch.equal(u, v)


def test_warm_keys_what_the_encoder_will_look_up(tmp_path):
    u8 = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    store = FeatureStore(tmp_path, "s")
    up = lambda t: torch.nn.functional.interpolate(t, size=(16, 16), mode="bilinear")  # noqa: E731
    assert store.warm(u8, _levels, up, batch=3, progress=False) == 4
    store.get(up(u8.float() / 255), lambda t: pytest.fail("warmed entries must be found"))


def _vgg(train="auto", grid=4):
    from fairsplat.models.encoders import EncoderConfig, Vgg16Encoder
    from fairsplat.weights import available

    if not available("lpips_vgg"):
        pytest.skip("VGG16 weights not fetched (python -m fairsplat.weights fetch)")
    return Vgg16Encoder(EncoderConfig("vgg16", image_size=32, dim=8, grid=grid, train=train))


def test_vgg16_stored_forward_equals_fresh_and_trains_only_the_fusion(tmp_path):
    enc = _vgg()
    x = torch.rand(3, 3, 32, 32)
    fresh = enc(x)
    assert attach_store(enc, tmp_path) == 1
    enc(x)  # fills the store
    stored = enc(x)  # reads it
    assert enc.store.computed == 3
    torch.testing.assert_close(stored, fresh, rtol=0, atol=1e-6)
    stored.square().sum().backward()
    assert all(p.grad is None for p in enc.trunk.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.fusion.parameters())


def test_a_trained_trunk_never_reads_a_store(tmp_path):
    enc = _vgg(train="yes")
    assert not stored_encoders(enc) and attach_store(enc, tmp_path) == 0
    enc(torch.rand(1, 3, 32, 32)).sum().backward()
    assert any(p.grad is not None for p in enc.trunk.parameters())


def test_warm_features_then_generator_reads_everything_from_the_store(tmp_path, monkeypatch):
    """train_ff's order: warm in the main process, then a worker's generator computes nothing."""
    from fairsplat.avatar.binding import BindingSpec
    from fairsplat.ff.data import Frames
    from fairsplat.ff.features import warm_features
    from fairsplat.models.encoders import EncoderConfig
    from fairsplat.models.generator import Generator, GeneratorConfig
    from fairsplat.models.lam import DecoderConfig, HeadsConfig

    _vgg()
    monkeypatch.setenv("FAIRSPLAT_FEATURES_DIR", str(tmp_path))
    cfg = GeneratorConfig(EncoderConfig("vgg16", image_size=32, dim=8, grid=4), DecoderConfig(16, 1, 2, 2.0, 8, "cross", 8),
                          HeadsConfig(hidden=8), BindingSpec("points", 0, 64, 8))  # fmt: skip
    images = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)  # resized to 32 for the encoder
    frames = Frames(ids=list("abcd"), subject=list("aabb"), split=["train"] * 4, fitzpatrick=["I"] * 4, images=images,
                    alpha=torch.zeros(4, 1, 48, 48, dtype=torch.uint8), skin=None, track={})  # fmt: skip
    info = warm_features(cfg, frames, progress=False)
    assert info == {"feature_store": True, "features_computed": 4, "features_crops": 4}
    assert warm_features(cfg, frames, progress=False)["features_computed"] == 0
    gen = Generator(cfg)
    attach_store(gen)
    src = (images.float() / 255).view(2, 2, 3, 48, 48)  # [B, K, 3, H, W] as gather() builds it
    gen(src, torch.rand(2, 64, 3))
    assert gen.encoder.store.computed == 0


@pytest.mark.parametrize(("name", "train", "stores"), [("vgg16", "auto", True), ("vgg16", "no", True),
                                                       ("vgg16", "yes", False), ("dinov2", "auto", False)])  # fmt: skip
def test_the_config_says_whether_a_store_applies_as_the_built_encoder_does(name, train, stores, tmp_path):
    """Stages ask the config first (lora skips loading every crop); it must agree with the module they build."""
    from fairsplat.ff.features import warm_features
    from fairsplat.models.encoders import EncoderConfig, build_encoder
    from fairsplat.models.generator import GeneratorConfig

    cfg = EncoderConfig(name, image_size=32, dim=8, hidden=16, layers=2, heads=2, levels=(0, 1), grid=4, train=train)
    assert cfg.stores_features() is stores
    assert bool(stored_encoders(build_encoder(cfg))) is stores
    if not stores:  # no crop is touched: frames=None would fail on any access
        assert warm_features(GeneratorConfig(cfg), None, progress=False) == {"feature_store": False}


def test_encoded_rows_are_every_training_crop_and_the_first_crops_of_held_out_subjects():
    from fairsplat.ff.data import Frames
    from fairsplat.ff.features import encoded_rows

    split = ["train"] * 4 + ["val"] * 3 + ["test"] * 3 + ["other"]
    subject = list("aabbcccddde")
    frames = Frames(ids=[str(i) for i in range(11)], subject=subject, split=split, fitzpatrick=["I"] * 11,
                    images=torch.zeros(11, 3, 4, 4, dtype=torch.uint8), alpha=torch.zeros(11, 1, 4, 4, dtype=torch.uint8),
                    skin=None, track={})  # fmt: skip
    slow = [i for i in range(11) if split[i] == "train"]  # by hand: c's and d's first two crops; e's split is unused
    slow += [i for s in "cd" for i in [j for j in range(11) if subject[j] == s][:2]]
    assert encoded_rows(frames, "train", ["val", "test"], 2) == sorted(slow) == [0, 1, 2, 3, 4, 5, 7, 8]
