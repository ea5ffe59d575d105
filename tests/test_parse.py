"""Parsing: metrics against slow references, the three backends, the smp checkpoint, training.

Training runs on accelerate (fairsplat/train/accel.py): a one-process run is
checked bit for bit against a plain torch loop (the slow reference), gradient
accumulation against one step over the concatenated batch, bf16 autocast on CPU.

Backends are tested through the ``BACKENDS`` registry; the Segformer backend
with a tiny random Segformer saved to tmp_path (no pretrained weights exist
here), whose classifier is rigged so the mapping of its label ids to ours is
checked exactly.
"""

import socket
from dataclasses import replace

import numpy as np
import pytest
import torch

from fairsplat.testing.fakes import fake_curated
from fairsplat.labels import CELEBAMASK_CLASSES, LABEL, NUM_CLASSES
from fairsplat.models.parser import Parser, ParserConfig, load_encoder_weights, load_parser, save_parser
from fairsplat.parse.backends import BACKENDS, Options
from fairsplat.io.images import load_rgb
from fairsplat.parse.data import FLIP_LUT, LabelledCrops, read_items
from fairsplat.metrics.segmentation import confusion, confusion_reference, iou_per_class, miou
from fairsplat.parse.metrics import summarise
from fairsplat.parse.segformer import label_lut
from fairsplat.parse.train import TrainConfig, evaluate, fit
from fairsplat.train.schedule import cosine
from fairsplat.train.accel import AccelConfig, build_accelerator, fresh_state, schedule_length, shard

TINY = ParserConfig(encoder="resnet18", size=64, decoder_channels=(32, 16, 16, 8, 8))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def accelerate_state():
    """accelerate keeps process-wide state; each test starts and ends without it."""
    with fresh_state():
        yield


# --- metrics ------------------------------------------------------------------------------


def test_confusion_matches_reference():
    rng = np.random.default_rng(0)
    gt, pred = rng.integers(0, NUM_CLASSES, (2, 7, 9)), rng.integers(0, NUM_CLASSES, (2, 7, 9))
    np.testing.assert_array_equal(confusion(gt, pred), confusion_reference(gt, pred))


def test_iou_values_by_hand():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 2]])
    iou = iou_per_class(confusion(gt, pred, 3))
    # class 0: TP 3, FP 0, FN 1 -> 3/4; class 1: TP 3, FP 1, FN 1 -> 3/5; class 2 absent from gt -> NaN
    np.testing.assert_allclose(iou[:2], [0.75, 0.6])
    assert np.isnan(iou[2])
    assert miou(confusion(gt, pred, 3)) == pytest.approx(0.675)


def test_summarise_gap_and_absent_types():
    perfect = confusion(np.array([0, 1, 1]), np.array([0, 1, 1]))
    half = confusion(np.array([0, 1]), np.array([0, 0]))  # bg IoU 1/2, skin 0
    rows = [{"fitzpatrick": "I", "subject_id": "a", "confusion": perfect},
            {"fitzpatrick": "VI", "subject_id": "b", "confusion": half}]  # fmt: skip
    s = summarise(rows)
    assert s["per_fitzpatrick"]["I"]["miou"] == 1.0 and s["per_fitzpatrick"]["VI"]["miou"] == 0.25
    assert s["miou_gap"] == 0.75 and set(s["per_fitzpatrick"]) == {"I", "VI"}
    assert (s["miou_worst_type"], s["miou_best_type"], s["miou_ratio"]) == ("VI", "I", 0.25)
    assert s["per_fitzpatrick"]["I"]["miou_ci"] is None  # one subject: no interval


def test_summarise_pools_per_type_and_resamples_subjects():
    """Per-type mIoU is that of the pooled confusion (not a mean of per-crop mIoUs); its interval
    re-pools the drawn subjects' crops, so it lies within the range of the subjects' pooled mIoUs."""
    rng = np.random.default_rng(0)
    rows, per_subject = [], []
    for s in range(5):
        crops = []
        for _ in range(3):
            gt = rng.integers(0, 3, (8, 8))
            pred = np.where(rng.random((8, 8)) < 0.2 + 0.1 * s, rng.integers(0, 3, (8, 8)), gt)
            crops.append(confusion(gt, pred))
            rows.append({"fitzpatrick": "III", "subject_id": f"s{s}", "confusion": crops[-1]})
        per_subject.append(miou(sum(crops)))
    p = summarise(rows)["per_fitzpatrick"]["III"]
    assert p["miou"] == round(miou(sum(r["confusion"] for r in rows)), 4)
    assert p["n_subjects"] == 5 and p["n_items"] == 15 and p["pixels"] == 15 * 64
    lo, hi = p["miou_ci"]
    assert min(per_subject) - 1e-4 <= lo <= p["miou"] <= hi <= max(per_subject) + 1e-4


def test_flip_lut_swaps_sides_and_is_an_involution():
    assert FLIP_LUT[LABEL["l_eye"]] == LABEL["r_eye"] and FLIP_LUT[LABEL["nose"]] == LABEL["nose"]
    np.testing.assert_array_equal(FLIP_LUT[FLIP_LUT], np.arange(256))


def test_class_weights_by_hand(tmp_path):
    from PIL import Image

    from fairsplat.parse.data import Item
    from fairsplat.parse.train import class_weights

    lab = np.zeros((10, 10), np.uint8)
    lab[:, :1] = 1  # freq: bg 0.9, skin 0.1 -> median 0.5
    Image.fromarray(lab, mode="L").save(tmp_path / "m.png")
    it = Item("a", "train", "I", "gt", tmp_path / "c.png", tmp_path / "m.png")
    w = class_weights([it], 3, 1.0, 10)
    torch.testing.assert_close(w, torch.tensor([0.5 / 0.9, 0.5 / 0.1, 0.0]))
    torch.testing.assert_close(class_weights([it], 3, 0.5, 10), w.sqrt())
    assert class_weights([it], 3, 0.0, 10) is None


def test_lr_schedule():
    assert cosine(0, 100, 10) == pytest.approx(0.1) and cosine(9, 100, 10) == pytest.approx(1.0)
    assert cosine(10, 100, 10) == pytest.approx(1.0) and cosine(100, 100, 10) == pytest.approx(0.0)


# --- backends -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("curated")
    fake_curated(root, per_type=2, frames=1, size=64)
    return root


def test_ground_truth_backend_returns_labels_and_reasons(curated, tmp_path):
    items = read_items(curated)
    images = [load_rgb(it.crop) for it in items]
    res = BACKENDS["ground_truth"](Options()).parse(items, images)
    assert all(r.labels is not None and r.labels.shape == (64, 64) for r in res)
    # no map, missing file, wrong size, ids out of range
    from PIL import Image

    Image.fromarray(np.ones((32, 32), np.uint8), mode="L").save(tmp_path / "small.png")
    Image.fromarray(np.full((64, 64), 40, np.uint8), mode="L").save(tmp_path / "bad.png")
    odd = [replace(items[0], mask=None), replace(items[0], mask=tmp_path / "gone.png"),
           replace(items[0], mask=tmp_path / "small.png"), replace(items[0], mask=tmp_path / "bad.png")]  # fmt: skip
    reasons = [r.reason for r in BACKENDS["ground_truth"](Options()).parse(odd, images[:4])]
    assert reasons == ["no_mask", "no_mask", "mask_size_mismatch", "bad_labels"]


def test_label_lut_maps_names_and_refuses_unknown():
    lut = label_lut({0: "Background", 1: "Left Eye", 2: "upper-lip", 3: "hair"})
    assert lut.tolist() == [LABEL["background"], LABEL["l_eye"], LABEL["u_lip"], LABEL["hair"]]
    assert label_lut({str(i): n for i, n in enumerate(CELEBAMASK_CLASSES)}).tolist() == list(range(NUM_CLASSES))
    with pytest.raises(ValueError, match="tongue"):
        label_lut({0: "background", 1: "tongue"})
    assert label_lut({0: "background", 1: "tongue"}, {"tongue": "mouth"}).tolist() == [0, LABEL["mouth"]]
    with pytest.raises(ValueError, match="not CelebAMask-HQ"):
        label_lut({0: "background"}, {"x": "lips"})


@pytest.fixture(scope="module")
def tiny_segformer(tmp_path_factory):
    """A random 4-class Segformer whose classifier always picks class 2 ("Right Eye")."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    names = {0: "Skin", 1: "background", 2: "Right Eye", 3: "Lower Lip"}
    cfg = SegformerConfig(
        num_labels=4, id2label=names, label2id={v: k for k, v in names.items()}, depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 16, 16], decoder_hidden_size=16, num_attention_heads=[1, 1, 1, 1],
    )  # fmt: skip
    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(cfg)
    with torch.no_grad():
        model.decode_head.classifier.weight.zero_()
        model.decode_head.classifier.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))
    path = tmp_path_factory.mktemp("segformer")
    model.save_pretrained(path)
    (path / "preprocessor_config.json").write_text('{"size": {"height": 64, "width": 64}}')
    return path


def test_segformer_backend_maps_ids(curated, tiny_segformer):
    items = read_items(curated)[:3]
    images = [load_rgb(it.crop) for it in items]
    backend = BACKENDS["segformer"](Options(segformer_path=tiny_segformer, batch_size=2))
    assert backend.input_size == (64, 64)
    res = backend.parse(items, images)
    assert len(res) == 3
    for r in res:
        assert r.labels.shape == (64, 64) and r.labels.dtype == np.uint8
        assert (r.labels == LABEL["r_eye"]).all()  # model id 2 -> our r_eye (5)


@pytest.fixture(scope="module")
def backend_options(tiny_segformer, tmp_path_factory):
    """Options that make each registered backend runnable here (a new backend must add its own)."""
    model_dir = tmp_path_factory.mktemp("parser")
    torch.manual_seed(0)
    save_parser(model_dir, Parser(TINY).eval(), TINY)
    return {
        "trained": Options(model_dir=model_dir, batch_size=2),
        "segformer": Options(segformer_path=tiny_segformer, batch_size=2),
        "ground_truth": Options(),
    }


@pytest.mark.parametrize("name", list(BACKENDS))
def test_backend_contract(name, backend_options, curated):
    """Every backend: one result per crop, in order; an [H, W] uint8 map of valid ids, or a reason."""
    assert set(backend_options) == set(BACKENDS), "add Options for the new backend to backend_options"
    items = read_items(curated)[:3]
    images = [load_rgb(it.crop) for it in items]
    backend = BACKENDS[name](backend_options[name])
    assert backend.name == name
    res = backend.parse(items, images)
    assert len(res) == len(items)
    for r, img in zip(res, images):
        assert r.labels is not None, r.reason
        assert r.labels.shape == img.shape[:2] and r.labels.dtype == np.uint8 and r.labels.max() < NUM_CLASSES
    again = backend.parse(items, images)
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(res, again)), "not deterministic"


def test_segformer_backend_needs_a_local_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        BACKENDS["segformer"](Options(segformer_path=tmp_path))


# --- the smp parser -------------------------------------------------------------------------


def test_building_the_parser_never_touches_the_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for enc in ("resnet18", "tu-mobilenetv3_small_100"):
        Parser(ParserConfig(encoder=enc, size=64, decoder_channels=(32, 16, 16, 8, 8)))


def test_checkpoint_round_trip_and_backend(tmp_path, curated):
    torch.manual_seed(0)
    model = Parser(TINY).eval()
    save_parser(tmp_path, model, TINY)
    again = load_parser(tmp_path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), again(x), rtol=0, atol=0)
    assert again.cfg == TINY
    items = read_items(curated)[:2]
    res = BACKENDS["trained"](Options(model_dir=tmp_path)).parse(items, [load_rgb(it.crop) for it in items])
    with torch.no_grad():
        logits = again(torch.from_numpy(np.stack([load_rgb(it.crop) for it in items])).permute(0, 3, 1, 2) / 255.0)
    np.testing.assert_array_equal(np.stack([r.labels for r in res]), logits.argmax(1).numpy())


def test_encoder_weights_load_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    src = Parser(TINY)
    save_file({f"encoder.{k}": v.contiguous() for k, v in src.net.encoder.state_dict().items()}, tmp_path / "enc.safetensors")
    dst = Parser(TINY)
    info = load_encoder_weights(dst, tmp_path / "enc.safetensors")
    assert info["matched"] == info["encoder_tensors"]
    torch.testing.assert_close(dst.net.encoder.conv1.weight, src.net.encoder.conv1.weight)
    save_file({"unrelated": torch.zeros(3)}, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="encoder tensors match"):
        load_encoder_weights(dst, tmp_path / "bad.safetensors")


def test_dataset_flip_swaps_labels(curated):
    items = [it for it in read_items(curated) if it.mask is not None][:1]
    plain, flipped = LabelledCrops(items, 64), LabelledCrops(items, 64, flip=True)
    x0, y0 = plain[0]
    for epoch in range(8):  # some epoch flips it (p = 0.5 each)
        flipped.epoch = epoch
        x1, y1 = flipped[0]
        if not torch.equal(x0, x1):
            break
    torch.testing.assert_close(x1, x0.flip(-1))
    assert torch.equal(y1, torch.from_numpy(FLIP_LUT[y0.flip(-1).numpy()]).long())


def test_affine_moves_image_and_labels_together(tmp_path):
    """Paint a crop in its label colours; after the random affine the two must still agree."""
    from PIL import Image

    from fairsplat.parse.plots import colourise

    fake_curated(tmp_path, per_type=1, frames=1, size=128)
    it = read_items(tmp_path)[0]
    Image.fromarray(colourise(np.asarray(Image.open(it.mask)))).save(tmp_path / "painted.png")
    painted = [replace(it, crop=tmp_path / "painted.png")]
    plain, (x, y) = LabelledCrops(painted, 128)[0], LabelledCrops(painted, 128, affine=1.0, seed=3)[0]
    assert not torch.equal(plain[1], y), "the affine did nothing"
    rgb = torch.from_numpy(colourise(y.numpy().astype(np.uint8))).permute(2, 0, 1).float() / 255.0
    fg = y > 0  # the fill differs by design: grey image, background ids

    def agree(ref):
        return ((x - ref).abs().amax(0) < 0.02)[fg].float().mean()

    assert agree(rgb) > 0.88, agree(rgb)  # bilinear vs nearest differ only along region borders
    for shift in (1, -1):  # a one-pixel misalignment either way agrees less
        assert agree(rgb.roll(shift, -1)) < agree(rgb) - 0.01 and agree(rgb.roll(shift, -2)) < agree(rgb) - 0.01


def test_random_affine_maps_points_as_documented():
    from fairsplat.parse.data import random_affine

    size = 100
    a, b, c, d, e, f = random_affine(np.random.default_rng(0), 1.0, size)
    rng = np.random.default_rng(0)  # the same draws, in random_affine's order
    s, th = 1.0 + rng.uniform(-0.1, 0.1), np.deg2rad(rng.uniform(-10.0, 10.0))
    tx, ty = rng.uniform(-0.05, 0.05, 2) * size
    c0 = (size - 1) / 2
    rot = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])  # forward: input -> output
    for p in ([c0, c0], [10.0, 80.0], [90.0, 5.0]):
        out = rot @ (np.array(p) - c0) + c0 + [tx, ty]  # where input point p lands
        np.testing.assert_allclose([a * out[0] + b * out[1] + c, d * out[0] + e * out[1] + f], p, atol=1e-9)


def test_tta_flip_is_mirror_equivariant():
    """With flip TTA, the prediction for a mirrored crop is the mirrored prediction with sides swapped."""
    from fairsplat.models.parser import mirror_channels

    torch.manual_seed(0)
    model = Parser(replace(TINY, tta_flip=True)).eval()
    x = torch.rand(1, 3, 64, 64)
    a, b = model.infer(x), model.infer(x.flip(-1))
    torch.testing.assert_close(b, a.flip(-1)[:, mirror_channels(TINY.labels)], atol=1e-5, rtol=1e-5)
    assert mirror_channels(TINY.labels) == FLIP_LUT[:NUM_CLASSES].tolist()


def test_training_learns_on_a_tiny_set(tmp_path):
    """Loss falls and held-out mIoU and pixel accuracy beat the majority-class predictor by a margin."""
    from fairsplat.io.images import load_labels

    root = tmp_path / "c"
    fake_curated(root, per_type=2, frames=2, size=64)
    items = read_items(root)
    cfg = TrainConfig(model=TINY, epochs=12, batch_size=8, lr=3e-3, eval_every=0, colour_jitter=0.1)
    model, out = fit(items, cfg, progress=False)
    m = out["metrics"]
    assert m["train_images"] == 12 and m["heldout_images"] == 12
    assert m["final_loss"] < 0.7 * m["first_epoch_loss"], m
    gt = np.stack([load_labels(it.mask) for it in items if it.split == "test"])
    majority = confusion(gt, np.zeros_like(gt))  # everything background: the most frequent class
    base_miou, base_acc = miou(majority), np.trace(majority) / majority.sum()
    assert m["miou"] > 2.0 * base_miou, (m["miou"], base_miou)
    assert m["pixel_accuracy"] > base_acc + 0.05, (m["pixel_accuracy"], base_acc)
    assert set(m["per_fitzpatrick"]) == {"I", "II", "III", "IV", "V", "VI"}


# --- accelerate ---------------------------------------------------------------------------


def _plain_fit(items, cfg: TrainConfig) -> Parser:
    """The pre-accelerate loop, kept as the slow reference: seed, build, shuffle, AdamW, warm-up + cosine."""
    from fairsplat.parse.train import class_weights, colour_jitter, loss_fn, split_items

    train, _ = split_items(items, cfg)
    torch.manual_seed(cfg.seed)
    model = Parser(cfg.model)
    data = LabelledCrops(train, cfg.model.size, flip=cfg.flip, seed=cfg.seed, affine=cfg.affine)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    warm = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(s, total, warm))
    weight = class_weights(train, len(cfg.model.labels), cfg.class_weight_power, cfg.model.size)
    loss, jitter = loss_fn(cfg.dice_weight, weight), colour_jitter(cfg.colour_jitter)
    for epoch in range(cfg.epochs):
        data.epoch = epoch
        for x, y in loader:
            model.train()
            opt.zero_grad(set_to_none=True)
            loss(model(jitter(x)), y).backward()
            opt.step()
            sched.step()
    return model.eval()


def test_one_process_fit_is_the_plain_loop_bit_for_bit(curated):
    """accelerate on one CPU process changes nothing: same sample order, same RNG draws, same weights."""
    cfg = TrainConfig(model=TINY, epochs=2, batch_size=4, eval_every=0, colour_jitter=0.2)
    items = read_items(curated)
    model, out = fit(items, cfg, progress=False)
    assert out["metrics"]["num_processes"] == 1 and out["metrics"]["device"] == "cpu"
    ref = _plain_fit(items, cfg).state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_resumed_fit_equals_an_uninterrupted_one(curated, tmp_path):
    """Killed mid-epoch after a checkpoint, resumed: bit-identical weights and BatchNorm statistics, and the
    same held-out score. Every augmentation that draws randomness is on (flips, affine, jitter, light, blur)."""
    cfg = TrainConfig(model=TINY, epochs=2, batch_size=4, eval_every=0, colour_jitter=0.2, affine=1.0, illuminant=0.5,
                      blur=0.5, checkpoint_every=2)  # fmt: skip
    items = read_items(curated)  # 6 train crops: 2 steps an epoch, checkpoints after steps 2 (and 4: the last, none)
    full, out = fit(items, cfg, progress=False, checkpoint_dir=tmp_path / "a", fingerprint="x")
    with fresh_state():
        _, part = fit(items, cfg, progress=False, checkpoint_dir=tmp_path / "b", fingerprint="x", stop_at=3)
    torch.manual_seed(77)  # the resumed run must not lean on the process's RNG state
    with fresh_state():
        rest, again = fit(items, cfg, progress=False, checkpoint_dir=tmp_path / "b", fingerprint="x")
    assert out["metrics"]["resumed_from"] is None and again["metrics"]["resumed_from"] == 2
    ref = full.state_dict()
    for k, v in rest.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert again["history"] == out["history"] and again["metrics"]["miou"] == out["metrics"]["miou"]


def test_prepared_loader_keeps_order_and_rng():
    acc = build_accelerator(AccelConfig(device="cpu"))
    ds = torch.utils.data.TensorDataset(torch.arange(10))

    def epochs(loader):
        torch.manual_seed(5)
        order = [[b[0].tolist() for b in loader] for _ in range(3)]
        return order, torch.rand(3)  # the global stream afterwards

    def make():
        return torch.utils.data.DataLoader(ds, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(1))

    plain, prepared = epochs(make()), epochs(acc.prepare(make()))
    assert plain[0] == prepared[0] and plain[0][0] != plain[0][1]  # same order, and it does reshuffle
    assert torch.equal(plain[1], prepared[1])


def test_shard_is_disjoint_and_complete():
    class Fake:
        num_processes = 3

    parts = []
    for rank in range(3):
        f = Fake()
        f.process_index = rank
        parts.append(shard(f, list(range(10))))
    assert sorted(sum(parts, [])) == list(range(10)) and shard(None, [1, 2]) == [1, 2]
