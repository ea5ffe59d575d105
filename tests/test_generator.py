"""The LAM-style generator: positional encoding, joint attention, K-source pooling, heads, gradients, LAM's shape."""

from __future__ import annotations

import math

import pytest
import torch

from fairsplat.avatar.binding import AvatarBinding, BindingSpec
from fairsplat.ff.render import render_targets
from fairsplat.models.encoders import ENCODERS, EncoderConfig
from fairsplat.models.generator import Generator, GeneratorConfig, load_generator
from fairsplat.models.lam import ATTENTION_MODES, DecoderConfig, HeadsConfig, PointImageAttention, fourier_features
from fairsplat.testing.toy_head import make_toy_head

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = GeneratorConfig(
    EncoderConfig("dinov2", image_size=32, dim=16, hidden=16, layers=2, heads=2, patch=8, levels=(0, 1)),
    DecoderConfig(width=16, blocks=2, heads=2, mlp_ratio=2.0, octaves=4, attention="cross", image_dim=16),
    HeadsConfig(hidden=16),
    BindingSpec("points", max_points=64),
)


def test_fourier_features_match_a_loop():
    xyz = torch.randn(2, 5, 3, dtype=torch.float64)
    got = fourier_features(xyz, 3)
    for b in range(2):
        for n in range(5):
            ref = list(xyz[b, n])
            sins, coss = [], []
            for k in range(3):
                for c in range(3):
                    sins.append(math.sin(2**k * math.pi * float(xyz[b, n, c])))
                    coss.append(math.cos(2**k * math.pi * float(xyz[b, n, c])))
            torch.testing.assert_close(got[b, n], torch.tensor([float(x) for x in ref] + sins + coss, dtype=torch.float64))
    assert fourier_features(xyz, 8).shape[-1] == 51  # LAM: xyz + sin/cos at 2^k·π, k = 0..7


def _reference_attention(attn, x, c, mode):
    """Softmax over explicit key sets, head by head: the slow twin of PointImageAttention."""
    h = attn.heads
    d = x.shape[-1] // h
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    kc, vc = attn.add_k_proj(c), attn.add_v_proj(c)
    outs = []
    for i in range(h):
        s = slice(i * d, (i + 1) * d)
        qi, ki, kci = attn.norm_q(q[..., s]), attn.norm_k(k[..., s]), attn.norm_added_k(kc[..., s])
        keys = torch.cat([ki, kci], 1) if mode == "joint" else kci
        vals = torch.cat([v[..., s], vc[..., s]], 1) if mode == "joint" else vc[..., s]
        w = torch.softmax(qi @ keys.transpose(1, 2) / math.sqrt(d), dim=-1)
        outs.append(w @ vals)
    return attn.to_out[0](torch.cat(outs, -1))


@pytest.mark.parametrize("mode", ATTENTION_MODES)
def test_point_stream_attention_matches_an_explicit_softmax(mode):
    from fairsplat.models.lam import JointBlock

    torch.manual_seed(0)
    block = JointBlock(DecoderConfig(width=8, heads=2, attention=mode, image_dim=8), last=False)
    x, c = torch.randn(2, 7, 8), torch.randn(2, 3, 8)
    got, _ = PointImageAttention(mode)(block.attn, x, c)
    torch.testing.assert_close(got, _reference_attention(block.attn, x, c, mode), rtol=1e-5, atol=1e-5)


def _gen(cfg=TINY):
    torch.manual_seed(0)
    return Generator(cfg).eval()


def test_k_source_mean_pool_is_order_invariant_and_the_identity_for_one_source():
    g = _gen()
    imgs, pts = torch.rand(2, 3, 3, 32, 32), torch.randn(2, 64, 3) * 0.05
    with torch.no_grad():
        pooled = g.features(imgs, pts)  # [2, 64, 16]
        singles = [g.features(imgs[:, i : i + 1], pts) for i in range(3)]  # K = 1: no pooling at all
        shuffled = g.features(imgs[:, [2, 0, 1]], pts)
        direct = g.decoder(pts, g.encoder(imgs[:, 0]))
    torch.testing.assert_close(pooled, sum(singles) / 3, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shuffled, pooled, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(singles[0], direct)


def test_heads_start_at_the_binding_gaussians():
    g = _gen()
    with torch.no_grad():
        a = g(torch.rand(1, 1, 3, 32, 32), torch.randn(1, 64, 3) * 0.05)
    assert a.offsets.abs().max() == 0 and a.log_scales.abs().max() == 0
    torch.testing.assert_close(a.quats, torch.tensor([1.0, 0, 0, 0]).expand_as(a.quats))
    assert abs(float(a.opacities.mean()) - 0.1) < 0.05 and 0 < float(a.colors.min()) and float(a.colors.max()) < 1


def test_gradients_flow_from_the_rendered_loss_to_the_encoder():
    head = make_toy_head()
    binding = AvatarBinding(head, TINY.binding)
    g = _gen().train()
    from fairsplat.splat.camera import intrinsics, look_at

    centre = torch.as_tensor(head.v_template).mean(0)
    batch = {"shape": torch.zeros(1, head.n_shape), "target_expr": torch.zeros(1, head.n_expr),
             "target_pose": torch.zeros(1, 15), "target_transl": torch.zeros(1, 3),
             "target_viewmat": look_at(centre + torch.tensor([0.0, 0.0, 0.6]), centre)[None],
             "target_K": intrinsics(32, 32, fov_deg=30)[None]}  # fmt: skip
    attrs = g(torch.rand(1, 1, 3, 32, 32), binding.canonical(batch["shape"]))
    rgb, alpha, _ = render_targets(binding, attrs, batch, 32)
    assert float(alpha.max()) > 0.05, "the toy head is not in view"
    ((rgb - 0.3) ** 2).mean().backward()
    for name in ("encoder.model.embeddings.patch_embeddings.projection.weight", "encoder.fusion.output_conv.weight",
                 "decoder.blocks.0.attn.to_q.weight", "decoder.blocks.1.attn.add_k_proj.weight", "heads.color.weight"):
        grad = dict(g.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name


def _lam_config() -> GeneratorConfig:
    """LAM's shape (seed 002 / NOTES.md): ViT-L/14 at 504 px fused at 4/11/17/23, 10 joint blocks of 1024, 16 heads."""
    enc = EncoderConfig("dinov2", image_size=504, dim=1024, hidden=1024, layers=24, heads=16, patch=14, levels=(4, 11, 17, 23))
    return GeneratorConfig(enc, DecoderConfig(1024, 10, 16, 4.0, 8, "joint", 1024), HeadsConfig(512),
                           BindingSpec("points", levels=1))  # fmt: skip


def _decoder_parameters(w: int, blocks: int, octaves: int, heads: int, ratio: float) -> int:
    lin = lambda i, o: i * o + o  # noqa: E731
    ff = lin(w, int(w * ratio)) + lin(int(w * ratio), w)
    attn_point, attn_image = 4 * lin(w, w), 4 * lin(w, w)
    rms = 4 * (w // heads)
    full = 4 * 2 * w + attn_point + attn_image + rms + 2 * ff
    last = full - 2 * w - lin(w, w) - ff  # no norm2_context, to_add_out or ff_context
    return lin(3 + 6 * octaves, w) + 2 * w + (blocks - 1) * full + last + 2 * w


def test_lam_shaped_config_builds_from_params_on_the_meta_device():
    from fairsplat.sections.train_ff import TrainFFParams

    cfg = _lam_config()
    with torch.device("meta"):
        g = Generator(cfg)
    dec = sum(p.numel() for p in g.decoder.parameters())
    assert dec == _decoder_parameters(1024, 10, 8, 16, 4.0) == 242_539_008
    total = sum(p.numel() for p in g.parameters())
    assert abs(total - 559e6) / 559e6 < 0.01, total  # SoulSplats' card: 559M in all for LAM
    assert g.encoder.model.embeddings.position_embeddings.shape[1] == 36 * 36 + 1  # ViT-L/14 at 504 px
    names = [n for n, m in g.decoder.named_modules() if isinstance(m, torch.nn.Linear) and ".attn." in n]
    assert len(names) == 79  # 8 per block, the last without to_add_out
    per_block = {n.split(".attn.")[1] for n in names}
    assert per_block == {"to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"}
    assert not any(n.startswith("blocks.9.") and n.endswith("to_add_out") for n in names)
    # params/gpu.yaml selects exactly this
    import yaml

    gpu = yaml.safe_load(open("params/gpu.yaml"))["train_ff"]
    built = TrainFFParams(**{k.replace("-", "_"): v for k, v in gpu.items() if k != "loss"}).ff_config().model
    assert (built.encoder, built.decoder, built.binding.levels, built.binding.max_points) == \
        (cfg.encoder, cfg.decoder, 1, None)  # fmt: skip


def test_lam_points_are_the_head_subdivided_once(procedural_head):
    b = AvatarBinding(procedural_head, BindingSpec("points", levels=1))
    assert 18_000 < len(b) < 25_000  # LAM-20K: 20,018 on FLAME


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_registry_builds_tokens(name):
    from fairsplat.weights import available

    if name == "vgg16" and not available("lpips_vgg"):
        pytest.skip("VGG16 weights not fetched (python -m fairsplat.weights fetch)")
    cfg = EncoderConfig(name, image_size=32, dim=8, hidden=16, layers=2, heads=2, patch=8, levels=(0, 1), grid=4)
    enc = ENCODERS[name](cfg)
    tokens = enc(torch.rand(2, 3, 32, 32))
    assert tokens.shape == (2, enc.grid[0] * enc.grid[1], 8)


def test_generator_checkpoint_round_trip_and_refusal(tmp_path):
    from fairsplat.io.checkpoint import CheckpointError, save_weights

    g = _gen()
    save_weights(tmp_path / "ok", g.state_dict(), TINY.to_json())
    back, _ = load_generator(tmp_path / "ok")
    for k, v in g.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    wider = GeneratorConfig(TINY.encoder, TINY.decoder, HeadsConfig(hidden=24), TINY.binding)
    save_weights(tmp_path / "bad", g.state_dict(), wider.to_json())  # weights of one shape, config of another
    with pytest.raises(CheckpointError, match=r"heads\.color\.weight"):
        load_generator(tmp_path / "bad")
