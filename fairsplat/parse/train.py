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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fairsplat.labels import NUM_CLASSES
from fairsplat.models.parser import IMAGENET, Parser, ParserConfig, load_encoder_weights, load_imagenet_encoder
from fairsplat.parse.base import ModelBackend, Options
from fairsplat.io.images import load_labels, load_rgb
from fairsplat.parse.data import Item, LabelledCrops
from fairsplat.metrics.segmentation import confusion
from fairsplat.parse.metrics import summarise
from fairsplat.train import loop
from fairsplat.train.accel import AccelConfig, build_accelerator, describe, reduce_sum, seed_everything, shard, sync_buffers
from fairsplat.train.loop import Every, LoopConfig
from fairsplat.train.optim import OptimConfig


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
    illuminant: float = 0.0
    blur: float = 0.0
    train_splits: tuple[str, ...] = ("train",)
    eval_splits: tuple[str, ...] = ("val", "test")
    eval_every: int = 10
    checkpoint_every: int = 0  # optimiser steps between resumable checkpoints (0 = none)
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


def build_model(cfg: TrainConfig) -> tuple[Parser, dict[str, Any]]:
    """The parser on CPU (``accelerator.prepare`` places it), encoder weights loaded if given."""
    model = Parser(cfg.model)
    info: dict[str, Any] = {"encoder_init": "random"}
    if cfg.encoder_weights == IMAGENET:
        info = {"encoder_init": IMAGENET, **load_imagenet_encoder(model)}
    elif cfg.encoder_weights:
        info = {"encoder_init": str(cfg.encoder_weights), **load_encoder_weights(model, cfg.encoder_weights)}
    return model, info


def photo_augment(illuminant: float, blur: float) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What uncontrolled photos do, per image (torch's seeded global RNG): with probability
    ``illuminant`` a blackbody light 2,700-7,500 K on a D65-balanced camera and a -1 to +1 EV
    exposure error (in linear RGB, as synth's ``hard`` lighting); with probability ``blur`` a
    Gaussian blur, sigma 0.5-1.5 px. Labels are unchanged: the parser must read parts, not light."""
    if illuminant <= 0 and blur <= 0:
        return None
    from fairsplat.faces.light import illuminant_gains

    cct_range = (2700.0, 7500.0)  # as synth's hard lighting (synth/scene.py HARD_CCT)

    def f(x: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] in [0, 1]
        b = x.shape[0]
        if illuminant > 0:
            on = torch.rand(b) < illuminant
            cct = torch.exp(torch.empty(b).uniform_(float(np.log(cct_range[0])), float(np.log(cct_range[1]))))
            ev = torch.empty(b).uniform_(-1.0, 1.0)
            gains = torch.tensor([illuminant_gains(float(t)) for t in cct], dtype=x.dtype) * (2.0**ev)[:, None]
            gains = torch.where(on[:, None], gains, torch.ones_like(gains))
            lin = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) * gains[:, :, None, None]
            lin = lin.clamp(0, 1)
            x = torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp_min(1e-8) ** (1 / 2.4) - 0.055)
        if blur > 0:
            import kornia.filters as KF

            on = torch.rand(b) < blur
            sigma = torch.empty(b).uniform_(0.5, 1.5)
            if on.any():
                xb = torch.stack([KF.gaussian_blur2d(x[i : i + 1], (7, 7), (float(sigma[i]), float(sigma[i])))[0] for i in range(b)])
                x = torch.where(on[:, None, None, None], xb, x)
        return x.clamp(0, 1)

    return f


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


def evaluate(model: Parser, items: Sequence[Item], batch_size: int = 16, accelerator=None, n_boot: int = 1000) -> dict:
    """Pooled confusion on ``items`` at their own resolution -> summarise()'s dict (+ image count).

    With an ``accelerator`` every process scores its shard and the per-crop
    confusions are gathered (the per-type intervals resample subjects, so they
    need every crop's matrix, not a per-type sum); call it on all of them.
    ``n_boot=0``: no intervals (the per-epoch watch reads only the mIoU).
    """
    backend = InMemoryBackend(model.eval(), Options(batch_size=batch_size, device=str(next(model.parameters()).device)))
    items = list(items)
    mine = shard(accelerator, items)
    confs: dict[int, np.ndarray] = {}  # position in this process's shard -> [C, C]
    for i in range(0, len(mine), batch_size):
        chunk = mine[i : i + batch_size]
        preds = backend.predict([load_rgb(it.crop) for it in chunk])
        for k, (it, pred) in enumerate(zip(chunk, preds)):
            gt = load_labels(it.mask)
            if gt.shape != pred.shape:  # the parse stage rejects such crops; scoring cannot use them either
                continue
            confs[i + k] = confusion(gt, pred)
    stack = _gather(accelerator, confs, len(items))  # [N, C, C], zeros where unscored
    rows = [{"fitzpatrick": it.fitzpatrick, "subject_id": it.subject_id, "confusion": c}
            for it, c in zip(items, stack) if c.sum()]  # fmt: skip
    return {**summarise(rows, n_boot=n_boot), "images": len(rows)}


def _gather(accelerator, confs: dict[int, np.ndarray], total: int) -> np.ndarray:  # -> [total, C, C] int64
    """Every crop's confusion on every process: each fills its shard's places (``shard`` takes
    every n-th item from its index), then one sum across processes."""
    stack = np.zeros((total, NUM_CLASSES, NUM_CLASSES), np.int64)  # confusion()'s default size
    step, first = (1, 0) if accelerator is None else (accelerator.num_processes, accelerator.process_index)
    for k, c in confs.items():
        stack[first + k * step] = c
    if accelerator is not None and accelerator.num_processes > 1:
        stack = reduce_sum(accelerator, stack)
    return stack


class ParserTask:
    """The parser as a ``fairsplat.train.loop`` task: build, one step, held-out watch."""

    def __init__(self, items: Sequence[Item], cfg: TrainConfig, accelerator) -> None:
        self.train, self.held = split_items(items, cfg)
        if not self.train:
            raise ValueError(f"no labelled crops in splits {cfg.train_splits}")
        self.cfg, self.acc, self.init = cfg, accelerator, {}

    def build(self, accelerator):
        cfg = self.cfg
        model, self.init = build_model(cfg)
        self.data = LabelledCrops(self.train, cfg.model.size, flip=cfg.flip, seed=cfg.seed, affine=cfg.affine)
        gen = torch.Generator().manual_seed(cfg.seed)
        loader = torch.utils.data.DataLoader(self.data, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        weight = class_weights(self.train, len(cfg.model.labels), cfg.class_weight_power, cfg.model.size)
        self.loss, self.jitter = loss_fn(cfg.dice_weight, weight), colour_jitter(cfg.colour_jitter)
        self.photo = photo_augment(cfg.illuminant, cfg.blur)
        return model, loader, gen

    def start_epoch(self, epoch: int) -> None:
        self.data.epoch = epoch  # per-epoch flips and affines, seeded (parse/data.py)

    def train_step(self, model, batch) -> dict[str, torch.Tensor]:
        x, y = batch  # [B, 3, S, S], [B, S, S]
        if self.photo is not None:
            x = self.photo(x)
        if self.jitter is not None:
            x = self.jitter(x)
        return {"loss": self.loss(model(x), y)}

    def evaluate(self, model) -> dict[str, float | None]:
        if not self.held:
            return {}
        sync_buffers(self.acc, model)
        return {"heldout_miou": evaluate(model, self.held, self.cfg.batch_size, self.acc, n_boot=0)["miou"]}


def loop_config(cfg: TrainConfig) -> LoopConfig:
    """The parser's run on the shared skeleton: AdamW on every parameter, warm-up + cosine, per-epoch log."""
    return LoopConfig(
        name="train_parser", epochs=cfg.epochs, schedule="cosine", warmup_frac=cfg.warmup_frac,
        optim=OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay),
        log=Every(1, "epoch"), eval=Every(cfg.eval_every, "epoch"), checkpoint=Every(cfg.checkpoint_every, "step"),
    )  # fmt: skip


def fit(items: Sequence[Item], cfg: TrainConfig, live=None, progress: bool = True, accelerator=None,
        checkpoint_dir=None, fingerprint: str = "", stop_at: int | None = None) -> tuple[Parser, dict]:  # fmt: skip
    """Train on the train split, score the held-out split. -> (model on CPU, metrics dict).

    Call on every process; ``live`` (dvclive) only on the main one. Without an
    ``accelerator`` one is built from ``cfg.accel``. ``checkpoint_dir``,
    ``fingerprint``, ``stop_at``: resumable checkpoints, as ``fairsplat.train.loop.fit``.
    """
    acc = accelerator or build_accelerator(cfg.accel)
    task = ParserTask(items, cfg, acc)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    result = loop.fit(task, loop_config(cfg), acc, live=live, progress=progress, checkpoint_dir=checkpoint_dir,
                      fingerprint=fingerprint, stop_at=stop_at)  # fmt: skip
    train_s = time.perf_counter() - t0
    history = result.history
    net = acc.unwrap_model(result.prepared, keep_fp32_wrapper=False)  # fp32 forward: scored as stage parse predicts
    sync_buffers(acc, net)
    scored = evaluate(net, task.held, cfg.batch_size, acc) if task.held else None
    metrics = {
        "train_images": len(task.train),
        "heldout_images": scored["images"] if scored else 0,
        "epochs": cfg.epochs,
        "train_seconds": round(train_s, 1),
        "resumed_from": result.resumed_from,
        "final_loss": round(history[-1]["loss"], 4),
        "first_epoch_loss": round(history[0]["loss"], 4),
        **describe(acc),
        "effective_batch": cfg.batch_size * acc.gradient_accumulation_steps * acc.num_processes,
        **task.init,
        **({k: v for k, v in scored.items() if k != "images"} if scored else {"miou": None, "miou_gap": None}),
    }
    return net.cpu().eval(), {"metrics": metrics, "history": history}
