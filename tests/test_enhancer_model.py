"""The enhancer model (fairsplat/models/enhancer.py): skip wiring, the init = plain VAE path, the one step,
padding, SD-Turbo's real config on the meta device with LoRA (fairsplat/enhancer/lora.py), bad directories."""

from __future__ import annotations

import pytest
import torch

from fairsplat.config import ParamsError
from fairsplat.enhancer.config import LoraSpec
from fairsplat.models.enhancer import (
    SD_SCHEDULER,
    SD_TURBO_UNET,
    SD_TURBO_VAE,
    Enhancer,
    EnhancerConfig,
    parameter_counts,
    skip_table,
    tiny_unet_config,
    tiny_vae_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_UNET = tiny_unet_config((16, 32, 32, 32), (2, 2, 2, 2), groups=8, cross_dim=16)


def small(vae=(4, 8, 8, 16), **kw) -> EnhancerConfig:
    return EnhancerConfig(vae=tiny_vae_config(vae, groups=4), unet=TINY_UNET, **kw)


def tapped_shapes(model: Enhancer, side: int) -> list[tuple[int, int, int]]:
    """(in channels, out channels, side) each skip conv actually sees, read with hooks on a forward pass."""
    seen = {}
    hooks = [conv.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0].shape, o.shape)))
             for k, conv in enumerate(model.skips)]  # fmt: skip
    model.eval()
    with torch.no_grad():
        model(torch.rand(1, 3, side, side))
    for h in hooks:
        h.remove()
    return [(seen[k][0][1], seen[k][1][1], seen[k][0][-1]) for k in range(4)]


@pytest.mark.parametrize("vae", [(8, 16, 32, 32), (4, 8, 12, 16), (8, 8, 8, 8), (4, 12, 8, 16)])
def test_skip_wiring_matches_the_hand_table(vae):
    """Deepest encoder input -> first up block: [C2, C1, C0, C0] -> [C3, C3, C2, C1] at 1/8, 1/4, 1/2, 1."""
    c0, c1, c2, c3 = vae
    hand = [(c2, c3, 8), (c1, c3, 16), (c0, c2, 32), (c0, c1, 64)]  # written out, not computed
    model = Enhancer(small(vae))
    assert skip_table(vae, 64) == hand
    assert tapped_shapes(model, 64) == hand
    assert [tuple(c.weight.shape[:2][::-1]) for c in model.skips] == [(i, o) for i, o, _ in hand]
    assert all(c.bias is None and c.kernel_size == (1, 1) for c in model.skips)


def test_the_vae_needs_exactly_four_levels():
    with pytest.raises(ValueError, match="exactly 4 VAE levels"):
        small(vae=(8, 16, 32))


def test_skips_start_at_1e5_and_the_output_is_the_plain_vae_path():
    torch.manual_seed(0)
    model = Enhancer(small()).eval()
    assert all(torch.all(c.weight == 1e-5) for c in model.skips)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        moments, skips = model.encode(x * 2 - 1)
        z = moments.chunk(2, dim=1)[0]
        # our re-stated passes without skips are diffusers' own encode/decode, exactly
        torch.testing.assert_close(moments, model.vae._encode(x * 2 - 1))
        torch.testing.assert_close(model.decode(z, None), model.vae.decode(z).sample)
        plain = model.decode(z, None)
        wired = model.decode(z, skips)
    assert not torch.equal(plain, wired), "the skips must be in the graph"
    torch.testing.assert_close(wired, plain, atol=1e-3, rtol=0)


def test_one_step_equals_ddpm_one_step_at_t999():
    """The x0 estimate equals diffusers' DDPMScheduler.step with one inference step (its 1e-10 noise aside)."""
    from diffusers import DDPMScheduler

    for pred_type in ("epsilon", "v_prediction", "sample"):
        model = Enhancer(small(scheduler={**SD_SCHEDULER, "prediction_type": pred_type}))
        sched = DDPMScheduler(**{**SD_SCHEDULER, "prediction_type": pred_type, "timestep_spacing": "trailing"})  # sd-turbo's
        sched.set_timesteps(1)
        assert int(sched.timesteps[0]) == 999
        z, e = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
        ref = sched.step(e, sched.timesteps[0], z, generator=torch.Generator().manual_seed(0)).prev_sample
        torch.testing.assert_close(model.one_step(e, z), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 100, 70), (1, 3, 33, 129)])
def test_any_size_is_padded_and_cropped_back(shape):
    model = Enhancer(small()).eval()
    assert model.multiple == 64
    with torch.no_grad():
        out = model(torch.rand(shape))
    assert out.shape == shape and bool(((out >= 0) & (out <= 1)).all())


def test_residual_model_starts_as_the_identity_and_trains():
    torch.manual_seed(0)
    model = Enhancer(small(residual=True))
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)
    model.train()
    out = model(x)
    out.mean().backward()
    assert model.vae.decoder.conv_out.weight.grad.abs().sum() > 0


def test_learned_text_embedding_trains_and_a_given_one_is_a_buffer():
    m = Enhancer(small())
    assert m.text.requires_grad and "text" in dict(m.named_parameters())
    cfg = small(text_tokens=3, text_learned=False)
    fixed = Enhancer(cfg, text=torch.randn(1, 3, 16))
    assert "text" not in dict(fixed.named_parameters()) and "text" in fixed.state_dict()
    with pytest.raises(ValueError, match="needs a text embedding"):
        Enhancer(cfg)


# ----------------------------------------------------------------------------- SD-Turbo, LoRA


@pytest.fixture(scope="module")
def sd_turbo_meta():
    """SD-Turbo's real UNet and VAE (configs), skips and text buffer, on the meta device: names and counts only."""
    from accelerate import init_empty_weights

    cfg = EnhancerConfig(vae=SD_TURBO_VAE, unet=SD_TURBO_UNET, text_tokens=77, text_learned=False)
    with init_empty_weights():
        return cfg, Enhancer(cfg, text=torch.zeros(1, 77, 1024))


def test_sd_turbo_shapes_on_the_meta_device(sd_turbo_meta):
    _, model = sd_turbo_meta
    counts = parameter_counts(model)
    assert counts["unet"] == 865_910_724  # SD 2.1's UNet: seed 001's "~860M"
    assert counts["vae"] == 83_653_863
    assert tapped_table(model) == skip_table((128, 256, 512, 512), 512)


def tapped_table(model: Enhancer) -> list[tuple[int, int, int]]:
    return [(c.in_channels, c.out_channels, s) for c, s in zip(model.skips, (64, 128, 256, 512))]


@pytest.mark.parametrize(
    ("parts", "trainable", "layers"),
    [(("encoder", "decoder"), 18_484_432, {"unet": 257, "vae.encoder": 31, "vae.decoder": 39}),
     (("decoder",), 17_745_848, {"unet": 257, "vae.decoder": 39})],
)  # fmt: skip
def test_lora_on_sd_turbo_counts(sd_turbo_meta, parts, trainable, layers):
    """pix2pix-turbo's targets, seed 001's ranks: 18,484,432 trainable (seed 001: "~18.5M of ~860M")."""
    import copy

    from accelerate import init_empty_weights

    from fairsplat.enhancer.lora import adapted_layers, apply_lora

    cfg, base = sd_turbo_meta
    model = copy.deepcopy(base)
    with init_empty_weights():
        apply_lora(model, LoraSpec(vae_parts=parts))
    assert dict(adapted_layers(model)) == layers
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert parameter_counts(model)["trainable"] == trainable
    assert all("lora_" in n or n.startswith("skips.") or n.startswith("unet.conv_in.") for n in trained)
    assert {f"skips.{i}.weight" for i in range(4)} <= trained and "unet.conv_in.weight" in trained
    lora_unet = sum(p.numel() for n, p in model.unet.named_parameters() if "lora_" in n)
    assert lora_unet == 16_217_152  # rank 16 over 257 layers
    assert not any("lora" in n for n, _ in model.skips.named_parameters()), "skips train fully, no adapter"


def test_model_code_never_mentions_lora():
    from pathlib import Path

    import fairsplat.models.enhancer as m

    assert "lora" not in Path(m.__file__).read_text().lower()


# ----------------------------------------------------------------------------- bad directories


def test_missing_sd_turbo_directory_fails_naming_the_key(tmp_path):
    from fairsplat.enhancer.sdturbo import check_dir

    with pytest.raises(ParamsError, match=r"train_enhancer\.sd-turbo-path: .* is not a directory"):
        check_dir(tmp_path / "nope")
    for sub, files in {"unet": ["config.json", "diffusion_pytorch_model.safetensors"],
                       "vae": ["config.json", "diffusion_pytorch_model.fp16.safetensors"],
                       "text_encoder": ["config.json", "model.safetensors"], "tokenizer": ["vocab.json"],
                       "scheduler": ["scheduler_config.json"]}.items():  # fmt: skip
        (tmp_path / sub).mkdir()
        for f in files:
            (tmp_path / sub / f).write_text("{}")
    with pytest.raises(ParamsError, match=r"train_enhancer\.sd-turbo-path: .*missing tokenizer/merges\.txt$"):
        check_dir(tmp_path)
    (tmp_path / "tokenizer" / "merges.txt").write_text("")
    check_dir(tmp_path)  # complete: no error
    (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ParamsError, match=r"unet/diffusion_pytorch_model\.safetensors\|"):
        check_dir(tmp_path)
