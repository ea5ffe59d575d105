"""The fairness LoRA: peft on the decoder by name, LAM's count, merge, the SoulSplats layout, refusals, the stage."""

from __future__ import annotations

import pytest
import torch

from fairsplat.config import ParamsError
from fairsplat.io.checkpoint import CheckpointError
from fairsplat.lora.adapters import DEFAULT_TARGETS, LoraSpec, adapted_layers, attach, lora_matrices, matching_layers
from fairsplat.lora.soulsplats import WEIGHTS, export_soulsplats, import_soulsplats
from fairsplat.models.generator import Generator
from tests.test_generator import TINY, _lam_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(rank=4, alpha=8.0, seed=0):
    torch.manual_seed(seed)
    return attach(Generator(TINY), LoraSpec(rank, alpha))


def test_lam_shaped_decoder_gets_60_adapters_and_1966080_parameters():
    with torch.device("meta"):
        model = attach(Generator(_lam_config()), LoraSpec(rank=16, alpha=16.0))
    layers = adapted_layers(model)
    assert len(layers) == 60 == 10 * len(DEFAULT_TARGETS)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 1_966_080 == 60 * 16 * (1024 + 1024)  # SoulSplats' card: 1.97M
    assert not any("encoder" in n for n in layers) and all(".attn." in n for n in layers)


def test_only_the_adapters_train_and_they_start_as_a_no_op():
    torch.manual_seed(0)
    base = Generator(TINY).eval()
    imgs, pts = torch.rand(1, 1, 3, 32, 32), torch.randn(1, 64, 3) * 0.05
    with torch.no_grad():
        before = base(imgs, pts)
    model = attach(base, LoraSpec(4, 8.0)).eval()
    assert {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad} == \
        {f"base_model.model.{n}" for n in adapted_layers(model)}  # fmt: skip
    with torch.no_grad():
        after = model(imgs, pts)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)  # B starts at zero: LoRA begins as the identity edit


def test_merge_equals_the_explicit_matrix_sum_and_unmerge_restores():
    model = _tiny(rank=4, alpha=8.0)
    name, layer = next(iter(adapted_layers(model).items()))
    a, b = lora_matrices(layer)
    with torch.no_grad():
        b.normal_()  # a non-trivial adapter
    w0 = layer.base_layer.weight.detach().clone()
    model.merge_adapter()
    torch.testing.assert_close(layer.base_layer.weight, w0 + (8.0 / 4) * (b @ a), rtol=1e-5, atol=1e-6)
    model.unmerge_adapter()
    torch.testing.assert_close(layer.base_layer.weight, w0, rtol=1e-5, atol=1e-6)


def test_soulsplats_layout_round_trips_exactly(tmp_path):
    src = _tiny(seed=1)
    with torch.no_grad():
        for layer in adapted_layers(src).values():
            for m in lora_matrices(layer):
                m.normal_()
    export_soulsplats(src, tmp_path, {"rank": 4}, {"rank": 4})
    assert {p.name for p in tmp_path.iterdir()} == {WEIGHTS, "config.json", "training_config.yaml"}
    again = export_soulsplats(src, tmp_path / "again", {"rank": 4}, {"rank": 4})
    assert again.read_bytes() == (tmp_path / WEIGHTS).read_bytes()  # byte-identical: the output's hash is stable
    saved = torch.load(tmp_path / WEIGHTS, weights_only=True)
    assert all(k.endswith((".lora_A", ".lora_B")) for k in saved) and len(saved) == 2 * len(adapted_layers(src))
    dst = _tiny(seed=2)
    import_soulsplats(dst, tmp_path / WEIGHTS)
    for (n, la), (_, lb) in zip(adapted_layers(src).items(), adapted_layers(dst).items()):
        for x, y in zip(lora_matrices(la), lora_matrices(lb)):
            assert torch.equal(x, y), n


@pytest.mark.parametrize("edit, message", [
    (lambda t: t | {"decoder.blocks.0.attn.nope.lora_A": torch.zeros(4, 16)}, r"'decoder\.blocks\.0\.attn\.nope\.lora_A' is not an adapted layer"),
    (lambda t: {k: v for k, v in t.items() if k != "decoder.blocks.1.attn.to_v.lora_B"}, r"missing 'decoder\.blocks\.1\.attn\.to_v\.lora_B'"),
    (lambda t: t | {"decoder.blocks.0.attn.to_q.lora_A": torch.zeros(4, 17)}, r"to_q\.lora_A' has shape \(4, 17\)"),
    (lambda t: {k: (v[:2] if k.endswith("lora_A") else v[:, :2]) for k, v in t.items()}, r"has rank 2, the model's adapter has rank 4"),
])  # fmt: skip
def test_import_refuses_a_file_naming_the_first_mismatch(tmp_path, edit, message):
    src = _tiny()
    export_soulsplats(src, tmp_path, {}, {})
    tensors = torch.load(tmp_path / WEIGHTS, weights_only=True)
    torch.save(edit(tensors), tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=message):
        import_soulsplats(_tiny(), tmp_path / "bad.pt")


def test_import_runs_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("open('%s', 'w').write('pwned')" % (tmp_path / "pwned"),))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception):  # weights_only refuses the global before anything runs
        import_soulsplats(_tiny(), tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("spec, key", [
    (LoraSpec(rank=0), "lora.rank"), (LoraSpec(alpha=0.0), "lora.alpha"),
    (LoraSpec(targets=("to_q", "q_proj")), "lora.target-modules: 'q_proj'"),
])  # fmt: skip
def test_bad_adapter_specs_fail_before_any_work_naming_the_key(spec, key):
    with pytest.raises(ParamsError, match=key):
        matching_layers(Generator(TINY), spec)


def test_bad_params_fail_naming_the_key(tmp_path):
    from fairsplat.config import parse_section
    from fairsplat.sections.lora import LoraParams

    for raw, key in (({"rank": 0}, "lora.rank"), ({"alpha": -1.0}, "lora.alpha"), ({"target-modules": []}, "target-modules")):
        with pytest.raises(ParamsError, match=key):
            parse_section("lora", raw, LoraParams)


def test_stage_trains_the_adapter_and_measures_every_variant(tiny_pipeline):
    out = tiny_pipeline.out("lora")
    assert (out / WEIGHTS).is_file() and (out / "config.json").is_file() and (out / "training_config.yaml").is_file()
    m = tiny_pipeline.metrics("lora")
    for v in ("base", "lora", "fullft", "balanced"):
        assert m[f"{v}_psnr_masked"] is not None, v
    assert m["trainable_parameters"] > 0 and m["adapter_bytes"] > 0 and m["adapted_layers"] > 0
    block = next(iter(m["per_fitzpatrick"].values()))
    assert {"lora_deficit_psnr_masked", "base_deficit_psnr_masked", "change_psnr_masked"} <= set(block)
    assert "recovery" in m and m["rare_types"]
    from fairsplat.models.generator import load_generator

    p = tiny_pipeline.params["lora"]
    model = attach(load_generator(tiny_pipeline.out("train_ff"))[0], LoraSpec(p["rank"], p["alpha"]))
    import_soulsplats(model, out / WEIGHTS)  # the exported file loads back into our peft model
    assert any(float(lora_matrices(la)[1].abs().sum()) > 0 for la in adapted_layers(model).values()), "B stayed zero"


def test_resumed_fine_tunes_equal_uninterrupted_ones(tiny_pipeline, tmp_path):
    """Both of the stage's runs (the adapter, the full fine-tune), killed after a checkpoint and resumed:
    bit-identical trainable tensors and curves."""
    from dataclasses import replace

    from fairsplat.io.checkpoint import read_config
    from fairsplat.lora.run import AdapterJob, train_run
    from fairsplat.models.generator import GeneratorConfig
    from fairsplat.sections.lora import LoraParams
    from fairsplat.train.accel import fresh_state

    model = tiny_pipeline.out("train_ff")
    raw = {k.replace("-", "_"): v for k, v in tiny_pipeline.params["lora"].items()}
    meta = read_config(model)
    cfg = LoraParams(**raw).run_config(GeneratorConfig.from_json(meta), int(meta["size"]))
    cfg = replace(cfg, train=replace(cfg.train, steps=4, checkpoint_every=2, eval_every=0))
    ins = (model, tiny_pipeline.out("head") / "head.npz", tiny_pipeline.out("curate"), tiny_pipeline.out("track"))

    def run(name, ckpt, stop=None):
        with fresh_state():
            return train_run(AdapterJob(name, cfg, *ins, ckpt, "x", stop))

    for name in ("lora", "fullft"):
        full = run(name, tmp_path / name / "a")
        assert run(name, tmp_path / name / "b", stop=3)["steps"] == 3
        torch.manual_seed(123)  # the resumed run must not lean on the process's RNG state
        rest = run(name, tmp_path / name / "b")
        assert rest["resumed_from"] == 2 and rest["steps"] == full["steps"] == 4
        assert set(rest["state"]) == set(full["state"]) and rest["history"] == full["history"], name
        for k, v in full["state"].items():
            assert (rest["state"][k] == v).all(), f"{name}: {k}"
