"""Stage ``train_parser``'s library: fit the smp parser on labelled crops, score held-out identities.

Split discipline: the network trains on ``train_splits`` (default: curate's
``train``) and is scored once, at the end, on ``eval_splits`` (default
``val`` + ``test``: identities it never saw). Nothing is selected on the
held-out set (no early stopping, no best-epoch pick), so its mIoU is an
honest estimate. The periodic held-out numbers in the dvclive log are for
watching curves only.

Devices, precision, accumulation and processes come from ``accelerate``
(``fairsplat.train.accel``): the same ``fit`` runs on one CPU, one GPU or
under ``accelerate launch -m stages.train_parser`` on several processes.
Held-out scoring is gathered: each process scores every n-th crop and the
confusion matrices are summed (integer counts, so the result is exactly the
single-process one for the same weights). Periodic held-out numbers are
computed in the training precision; the final score in fp32, as stage
``parse`` predicts.

Determinism: torch's generators are seeded from ``seed`` (+ process index);
on CPU with a fixed thread count the run repeats bit for bit, and a
one-process run is bit-identical to the pre-accelerate plain loop
(``accelerator.prepare`` keeps the loader's sampler and generator on one
process; tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fairsplat.labels import FITZPATRICK
from fairsplat.models.parser import Parser, ParserConfig, load_encoder_weights
from fairsplat.parse.backends import ModelBackend, Options
from fairsplat.parse.data import Item, LabelledCrops, load_labels, load_rgb
from fairsplat.parse.metrics import confusion, pooled, summarise
from fairsplat.train.accel import AccelConfig, build_accelerator, describe, reduce_sum, schedule_length, seed_everything
from fairsplat.train.accel import shard, sync_buffers


@dataclass(frozen=True)
class TrainConfig:
    """The training knobs (the params section maps onto this; see sections/train_parser.py)."""

    model: ParserConfig = field(default_factory=ParserConfig)
    encoder_weights: str | None = None
    epochs: int = 60
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.05
    dice_weight: float = 0.5
    class_weight_power: float = 0.5
    flip: bool = True
    affine: float = 0.0
    colour_jitter: float = 0.2
    train_splits: tuple[str, ...] = ("train",)
    eval_splits: tuple[str, ...] = ("val", "test")
    eval_every: int = 10
    seed: int = 0
    accel: AccelConfig = field(default_factory=lambda: AccelConfig(section="train_parser"))


class InMemoryBackend(ModelBackend):
    """A ModelBackend over a network in memory: evaluation predicts exactly as stage ``parse`` does."""

    name = "in_memory"

    def __init__(self, model: Parser, opts: Options):
        super().__init__(opts)
        self.model = model
        self.lut = np.arange(len(model.cfg.labels), dtype=np.uint8)
        self.input_size = (model.cfg.size, model.cfg.size)

    @torch.no_grad()
    def logits(self, x):
        return self.model.infer(x)


def split_items(items: Sequence[Item], cfg: TrainConfig) -> tuple[list[Item], list[Item]]:
    """(train, held-out) among the crops that have label maps."""
    labelled = [it for it in items if it.mask is not None and it.mask.exists()]
    train = [it for it in labelled if it.split in cfg.train_splits]
    held = [it for it in labelled if it.split in cfg.eval_splits]
    overlap = {it.image_id for it in train} & {it.image_id for it in held}
    assert not overlap, f"train and eval splits share crops: {sorted(overlap)[:3]}"
    return train, held


def resolve_device(name: str) -> torch.device:
    """Inference device for stage ``parse`` (its ``device`` key): auto = CUDA if present, else CPU.
    Training does not use it: the accelerator places the model."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: TrainConfig) -> tuple[Parser, dict[str, Any]]:
    """The parser on CPU (``accelerator.prepare`` places it), encoder weights loaded if given."""
    model = Parser(cfg.model)
    info: dict[str, Any] = {"encoder_init": "random"}
    if cfg.encoder_weights:
        info = {"encoder_init": str(cfg.encoder_weights), **load_encoder_weights(model, cfg.encoder_weights)}
    return model, info


def colour_jitter(strength: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Batched photometric jitter (kornia); hue kept small so skin stays skin-coloured.

    Why: the parser must not learn "skin = this tone". Brightness, contrast
    and saturation vary per image, which spreads tones within and across types.
    """
    if strength <= 0:
        return None
    import kornia.augmentation as KA

    return KA.ColorJiggle(brightness=strength, contrast=strength, saturation=strength, hue=0.02, p=0.8)


def class_weights(items: Sequence[Item], n: int, power: float, size: int) -> torch.Tensor | None:
    """Cross-entropy weights (median frequency / frequency) ** power over the train label maps. -> [n]

    Why: at 128 px an eye is ~15 px against ~10,000 of background; unweighted
    cross-entropy learns to never predict it. power 0.5 softens the classic
    median-frequency balancing (power 1), which over-predicts tiny classes.
    Classes absent from the train set get weight 0 (they are never a target).
    """
    if power <= 0:
        return None
    from fairsplat.parse.data import resize_labels

    counts = np.zeros(n, np.float64)
    for it in items:
        counts += np.bincount(resize_labels(load_labels(it.mask), size).ravel(), minlength=n)[:n]
    freq = counts / counts.sum()
    present = freq > 0
    w = np.zeros(n)
    w[present] = (np.median(freq[present]) / freq[present]) ** power
    return torch.tensor(w, dtype=torch.float32)


def loss_fn(dice_weight: float, weight: torch.Tensor | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(Weighted) cross-entropy plus soft Dice: both keep small classes (eyes, brows, lips) from being ignored."""
    from segmentation_models_pytorch.losses import DiceLoss

    dice = DiceLoss(mode="multiclass", from_logits=True)

    def f(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [B, C, S, S], [B, S, S]
        w = weight.to(logits.device) if weight is not None else None
        loss = F.cross_entropy(logits, y, weight=w)
        return loss + dice_weight * dice(logits, y) if dice_weight > 0 else loss

    return f


def lr_at(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0: a multiplier of the base lr."""
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def train_step(accelerator, model, opt, sched, x, y, loss, jitter) -> float:
    """One micro-batch: forward (autocast per mixed-precision), backward; the optimiser and
    scheduler step only when ``accumulate`` says the gradients are complete."""
    model.train()
    if jitter is not None:
        x = jitter(x)
    with accelerator.accumulate(model):
        val = loss(model(x), y)
        accelerator.backward(val)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return float(val.detach())


def evaluate(model: Parser, items: Sequence[Item], batch_size: int = 16, accelerator=None) -> dict:
    """Pooled confusion on ``items`` at their own resolution -> summarise()'s dict (+ image count).

    With an ``accelerator`` every process scores its shard and the confusion
    matrices are summed across processes; call it on all of them.
    """
    backend = InMemoryBackend(model.eval(), Options(batch_size=batch_size, device=str(next(model.parameters()).device)))
    mine = shard(accelerator, list(items))
    pairs = []
    for i in range(0, len(mine), batch_size):
        chunk = mine[i : i + batch_size]
        preds = backend.predict([load_rgb(it.crop) for it in chunk])
        for it, pred in zip(chunk, preds):
            gt = load_labels(it.mask)
            if gt.shape != pred.shape:  # the parse stage rejects such crops; scoring cannot use them either
                continue
            pairs.append((it.fitzpatrick, confusion(gt, pred)))
    conf, per_type = pooled(pairs)
    n = len(pairs)
    if accelerator is not None and accelerator.num_processes > 1:
        conf, per_type, n = _gather(accelerator, conf, per_type, n)
    return {**summarise(conf, per_type), "images": n}


def _gather(accelerator, conf: np.ndarray, per_type: dict[str, np.ndarray], n: int):
    """Sum (overall confusion, per-type confusions, image count) over processes."""
    stack = np.stack([conf] + [per_type.get(t, np.zeros_like(conf)) for t in FITZPATRICK])  # [1 + T, C, C]
    stack = reduce_sum(accelerator, stack)
    n = int(reduce_sum(accelerator, np.array([n], np.int64))[0])
    return stack[0], {t: c for t, c in zip(FITZPATRICK, stack[1:]) if c.sum()}, n


def fit(items: Sequence[Item], cfg: TrainConfig, live=None, progress: bool = True, accelerator=None) -> tuple[Parser, dict]:
    """Train on the train split, score the held-out split. -> (model on CPU, metrics dict).

    Call on every process; ``live`` (dvclive) only on the main one. Without an
    ``accelerator`` one is built from ``cfg.accel``.
    """
    train, held = split_items(items, cfg)
    if not train:
        raise ValueError(f"no labelled crops in splits {cfg.train_splits}")
    acc = accelerator or build_accelerator(cfg.accel)
    seed_everything(cfg.seed)
    model, init = build_model(cfg)
    data = LabelledCrops(train, cfg.model.size, flip=cfg.flip, seed=cfg.seed, affine=cfg.affine)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=False)
    loader = acc.prepare(loader)  # first: the schedule's length depends on this process's share
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = schedule_length(acc, len(loader), cfg.epochs)
    warm = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, warm))
    model, opt, sched = acc.prepare(model, opt, sched)
    weight = class_weights(train, len(cfg.model.labels), cfg.class_weight_power, cfg.model.size)
    loss, jitter = loss_fn(cfg.dice_weight, weight), colour_jitter(cfg.colour_jitter)
    history: list[dict] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="train_parser", unit="epoch", disable=not (progress and acc.is_main_process))
    for epoch in bar:
        data.epoch = epoch
        losses = [train_step(acc, model, opt, sched, x, y, loss, jitter) for x, y in loader]
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": _mean(acc, losses)}
        if held and cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0) and epoch + 1 < cfg.epochs:
            net = acc.unwrap_model(model)
            sync_buffers(acc, net)
            row["heldout_miou"] = evaluate(net, held, cfg.batch_size, acc)["miou"]  # watched, never selected on
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        if live is not None:
            for k, v in row.items():
                if k != "epoch" and v is not None:
                    live.log_metric(f"train_parser/{k}", v)
            live.next_step()
    train_s = time.perf_counter() - t0
    net = acc.unwrap_model(model, keep_fp32_wrapper=False)  # fp32 forward: scored as stage parse predicts
    sync_buffers(acc, net)
    scored = evaluate(net, held, cfg.batch_size, acc) if held else None
    metrics = {
        "train_images": len(train),
        "heldout_images": scored["images"] if scored else 0,
        "epochs": cfg.epochs,
        "train_seconds": round(train_s, 1),
        "final_loss": round(history[-1]["loss"], 4),
        "first_epoch_loss": round(history[0]["loss"], 4),
        **describe(acc),
        "effective_batch": cfg.batch_size * acc.gradient_accumulation_steps * acc.num_processes,
        **init,
        **({k: v for k, v in scored.items() if k != "images"} if scored else {"miou": None, "miou_gap": None}),
    }
    return net.cpu().eval(), {"metrics": metrics, "history": history}


def _mean(accelerator, losses: list[float]) -> float:
    """Epoch mean of the micro-batch losses over all processes (one process: the plain mean)."""
    if accelerator.num_processes == 1:
        return float(np.mean(losses))
    s = reduce_sum(accelerator, np.array([sum(losses), len(losses)], np.float64))
    return float(s[0] / s[1])
