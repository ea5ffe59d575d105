"""The shared training skeleton (fairsplat/train): schedules, AdamW, accumulation, guards, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairsplat.io.checkpoint import CheckpointError, load_weights, save_weights
from fairsplat.train.accel import AccelConfig, build_accelerator, fresh_state
from fairsplat.train.loop import Every, LoopConfig, NonFiniteLoss, fit
from fairsplat.train.optim import OptimConfig, param_groups
from fairsplat.train.schedule import SCHEDULES, lr_lambda

pytestmark = pytest.mark.usefixtures("one_thread")


class Tiny(torch.nn.Module):
    """Conv -> ReLU -> conv: no BatchNorm, whose batch statistics would make micro-batches differ from the whole."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Conv2d(6, 4, 1)

    def forward(self, x):  # [B, 3, H, W] -> [B, 4, H, W]
        return self.b(torch.relu(self.a(x)))


class ToyTask:
    """Segment random 8x8 images; shuffled loader with its own generator, dropout-like global RNG draws."""

    def __init__(self, n: int = 10, batch: int = 2, seed: int = 0, noise: bool = True, nan_at: int | None = None):
        g = torch.Generator().manual_seed(123)
        self.x = torch.rand(n, 3, 8, 8, generator=g)
        self.y = (self.x[:, 0] > 0.5).long() + 2 * (self.x[:, 1] > 0.5).long()  # learnable per pixel
        self.batch, self.seed, self.noise, self.nan_at, self.calls, self.epochs = batch, seed, noise, nan_at, 0, []

    def build(self, accelerator):
        torch.manual_seed(self.seed)
        model = Tiny()
        gen = torch.Generator().manual_seed(self.seed)
        ds = torch.utils.data.TensorDataset(self.x, self.y)
        return model, torch.utils.data.DataLoader(ds, batch_size=self.batch, shuffle=True, generator=gen), gen

    def start_epoch(self, epoch):
        self.epochs.append(epoch)

    def train_step(self, model, batch):
        x, y = batch
        if self.noise:  # a draw from the global stream each step, as augmentations make
            x = x + 0.05 * torch.randn_like(x)
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(model(x), y)
        if self.nan_at is not None and self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "l2": sum((p**2).sum() for p in model.parameters()) * 0}

    def evaluate(self, model):
        with torch.no_grad():
            return {"heldout": float(torch.nn.functional.cross_entropy(model(self.x), self.y))}


def _fit(task, cfg, **kw):
    with fresh_state():
        acc = build_accelerator(AccelConfig(device="cpu", grad_accum=kw.pop("grad_accum", 1),
                                            mixed_precision=kw.pop("mixed_precision", "no")))  # fmt: skip
        return fit(task, cfg, acc, progress=False, **kw)


CFG = LoopConfig(name="toy", epochs=3, optim=OptimConfig(lr=0.05, weight_decay=0.01, betas=(0.9, 0.95)),
                 warmup_steps=2, grad_clip=1.0, log=Every(2, "step"), eval=Every(1, "epoch"),
                 checkpoint=Every(3, "step"))  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_schedules_warm_up_linearly_and_end_where_they_should(kind):
    f = lr_lambda(kind, total=100, warmup=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(100) == pytest.approx({"cosine": 0.0, "linear": 0.0, "constant": 1.0}[kind])
    assert all(f(s) >= f(s + 1) - 1e-12 for s in range(10, 100))  # never rises after warm-up
    with pytest.raises(ValueError, match="schedule 'cosinus'"):
        lr_lambda("cosinus", 10, 1)


def test_param_groups_keep_norms_and_biases_out_of_weight_decay_when_asked():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    split = param_groups(m.named_parameters(), OptimConfig(weight_decay=0.1, decay_norms_and_biases=False))
    assert [len(g["params"]) for g in split] == [1, 3] and [g["weight_decay"] for g in split] == [0.1, 0.0]
    assert len(param_groups(m.named_parameters(), OptimConfig(weight_decay=0.1))[0]["params"]) == 4
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(m.named_parameters(), OptimConfig())


def test_fit_learns_logs_and_evaluates():
    task = ToyTask()
    res = _fit(task, CFG)
    assert res.steps == 15  # 5 batches x 3 epochs
    losses = [r["loss"] for r in res.history if "loss" in r]
    assert losses[-1] < losses[0], losses
    evals = [r for r in res.history if "heldout" in r]
    assert len(evals) == 2, "evaluated after epochs 1 and 2, not at the end (the stage scores the end itself)"
    assert task.epochs == [0, 1, 2]


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    """Interrupt mid-epoch after a checkpoint, resume from it: same weights and the same curves."""
    full = _fit(ToyTask(), CFG, checkpoint_dir=tmp_path / "a", fingerprint="f")
    part = _fit(ToyTask(), CFG, checkpoint_dir=tmp_path / "b", fingerprint="f", stop_at=7)  # checkpoint at 6
    assert part.stopped_early and part.steps == 7
    torch.manual_seed(999)  # the resumed run must not depend on the state the process is in
    np.random.seed(5)
    rest = _fit(ToyTask(), CFG, checkpoint_dir=tmp_path / "b", fingerprint="f")
    assert rest.resumed_from == 6 and rest.steps == 15
    for k, v in full.model.state_dict().items():
        torch.testing.assert_close(rest.model.state_dict()[k], v, rtol=0, atol=0)
    assert [r["loss"] for r in rest.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-12)


class FakeLive:
    """dvclive's two calls the loop makes, recorded: (step, name, value) rows."""

    def __init__(self):
        self.step, self.rows = 0, []

    def log_metric(self, name, value):
        self.rows.append((self.step, name, value))

    def next_step(self):
        self.step += 1


def test_resumed_run_logs_the_same_curves(tmp_path):
    """The dvclive log of a resumed run starts with the rows the interrupted run logged before its checkpoint:
    a killed and re-run stage writes the same curves as one that never stopped."""
    full, rest = FakeLive(), FakeLive()
    _fit(ToyTask(), CFG, live=full, checkpoint_dir=tmp_path / "a", fingerprint="f")
    _fit(ToyTask(), CFG, live=FakeLive(), checkpoint_dir=tmp_path / "b", fingerprint="f", stop_at=7)
    _fit(ToyTask(), CFG, live=rest, checkpoint_dir=tmp_path / "b", fingerprint="f")
    assert full.step == rest.step == 8 and [r[:2] for r in rest.rows] == [r[:2] for r in full.rows]
    assert [r[2] for r in rest.rows] == pytest.approx([r[2] for r in full.rows], rel=1e-12)


def test_checkpoint_of_another_run_is_not_resumed(tmp_path):
    _fit(ToyTask(), CFG, checkpoint_dir=tmp_path, fingerprint="params-A", stop_at=4)
    again = _fit(ToyTask(), CFG, checkpoint_dir=tmp_path, fingerprint="params-B")
    assert again.resumed_from is None and again.steps == 15


def test_accumulation_and_schedule_length():
    res = _fit(ToyTask(n=10, batch=1), LoopConfig(name="toy", epochs=2, log=Every(1, "epoch")), grad_accum=3)
    assert res.steps == 8 == 2 * -(-10 // 3)  # the last partial accumulation of an epoch steps too


def test_non_finite_loss_stops_naming_step_and_term():
    with pytest.raises(NonFiniteLoss, match=r"loss term 'loss' is nan at step 4"):
        _fit(ToyTask(nan_at=4), CFG)


def test_weights_refuse_wrong_names_or_shapes(tmp_path):
    m = Tiny()
    save_weights(tmp_path, m.state_dict(), {"kind": "tiny"})
    load_weights(Tiny(), tmp_path / "model.safetensors")
    wrong = Tiny()
    wrong.b = torch.nn.Conv2d(6, 5, 1)
    with pytest.raises(CheckpointError, match=r"'b.bias' has shape \(4,\), the model expects \(5,\)"):
        load_weights(wrong, tmp_path / "model.safetensors")
    extra = torch.nn.Sequential(Tiny())
    with pytest.raises(CheckpointError, match=r"missing tensor '0.a.bias'"):
        load_weights(extra, tmp_path / "model.safetensors")


def test_two_accumulated_micro_batches_equal_one_step_on_their_concatenation():
    one_step = LoopConfig(name="toy", epochs=1, optim=OptimConfig(lr=0.05), schedule="constant")
    accum = _fit(ToyTask(n=6, batch=3, noise=False), one_step, grad_accum=2)
    whole = _fit(ToyTask(n=6, batch=6, noise=False), one_step)
    init = ToyTask().build(None)[0].state_dict()
    assert accum.steps == whole.steps == 1
    moved = 0.0
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(accum.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
        moved = max(moved, float((v - init[k]).abs().max()))
    assert moved > 1e-3, "the step did not move the weights"


def test_bf16_autocast_trains_fp32_weights_on_cpu():
    if not torch.amp.is_autocast_available("cpu"):
        pytest.skip("this torch build has no CPU autocast")
    task, seen = ToyTask(noise=False), []
    build = task.build

    def hooked(acc):
        model, loader, gen = build(acc)
        model.a.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        return model, loader, gen

    task.build = hooked
    res = _fit(task, LoopConfig(name="toy", epochs=3, optim=OptimConfig(lr=0.05)), mixed_precision="bf16")
    assert seen and set(seen) == {torch.bfloat16} and res.model.a.weight.dtype == torch.float32
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_torch_threads_sets_the_count_for_the_block_and_restores_it_even_on_error():
    import torch

    from fairsplat.train.jobs import torch_threads

    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0: leave the count alone
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        raise RuntimeError
    assert torch.get_num_threads() == before
