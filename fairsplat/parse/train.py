"""Stage ``train_parser``'s library: fit the smp parser on labelled crops, score held-out identities.

Split discipline: the network trains on ``train_splits`` (default: curate's
``train``) and is scored once, at the end, on ``eval_splits`` (default
``val`` + ``test``: identities it never saw). Nothing is selected on the
held-out set (no early stopping, no best-epoch pick), so its mIoU is an
honest estimate. The periodic held-out numbers in the dvclive log are for
watching curves only.

Device: CUDA when present, else CPU (``accelerate`` is not in the pinned
environment; the loop is a plain one so it can move under
``accelerate launch`` unchanged apart from ``prepare``/``backward``).
Determinism: torch's generators are seeded from ``seed``; on CPU with a
fixed thread count the run repeats bit for bit.
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

from fairsplat.models.parser import Parser, ParserConfig, load_encoder_weights
from fairsplat.parse.backends import ModelBackend, Options
from fairsplat.parse.data import Item, LabelledCrops, load_labels, load_rgb
from fairsplat.parse.metrics import confusion, pooled, summarise


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
    device: str = "auto"


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
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: TrainConfig, device: torch.device) -> tuple[Parser, dict[str, Any]]:
    model = Parser(cfg.model)
    info: dict[str, Any] = {"encoder_init": "random"}
    if cfg.encoder_weights:
        info = {"encoder_init": str(cfg.encoder_weights), **load_encoder_weights(model, cfg.encoder_weights)}
    return model.to(device), info


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


def train_step(model, opt, sched, x, y, loss, jitter) -> float:
    model.train()
    if jitter is not None:
        x = jitter(x)
    opt.zero_grad(set_to_none=True)
    val = loss(model(x), y)
    val.backward()
    opt.step()
    sched.step()
    return float(val.detach())


def evaluate(model: Parser, items: Sequence[Item], batch_size: int = 16) -> dict:
    """Pooled confusion on ``items`` at their own resolution -> summarise()'s dict (+ image count)."""
    backend = InMemoryBackend(model.eval(), Options(batch_size=batch_size, device=str(next(model.parameters()).device)))
    pairs = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        preds = backend.predict([load_rgb(it.crop) for it in chunk])
        for it, pred in zip(chunk, preds):
            gt = load_labels(it.mask)
            if gt.shape != pred.shape:  # the parse stage rejects such crops; scoring cannot use them either
                continue
            pairs.append((it.fitzpatrick, confusion(gt, pred)))
    conf, per_type = pooled(pairs)
    return {**summarise(conf, per_type), "images": len(pairs)}


def fit(items: Sequence[Item], cfg: TrainConfig, live=None, progress: bool = True) -> tuple[Parser, dict]:
    """Train on the train split, score the held-out split. -> (model on CPU, metrics dict)."""
    train, held = split_items(items, cfg)
    if not train:
        raise ValueError(f"no labelled crops in splits {cfg.train_splits}")
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    model, init = build_model(cfg, device)
    data = LabelledCrops(train, cfg.model.size, flip=cfg.flip, seed=cfg.seed, affine=cfg.affine)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, generator=gen, drop_last=False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    warm = max(1, int(cfg.warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, warm))
    weight = class_weights(train, len(cfg.model.labels), cfg.class_weight_power, cfg.model.size)
    loss, jitter = loss_fn(cfg.dice_weight, weight), colour_jitter(cfg.colour_jitter)
    history: list[dict] = []
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="train_parser", unit="epoch", disable=not progress)
    for epoch in bar:
        data.epoch = epoch
        losses = [train_step(model, opt, sched, x.to(device), y.to(device), loss, jitter) for x, y in loader]
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
        if held and cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0) and epoch + 1 < cfg.epochs:
            row["heldout_miou"] = evaluate(model, held, cfg.batch_size)["miou"]  # watched, never selected on
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        if live is not None:
            for k, v in row.items():
                if k != "epoch" and v is not None:
                    live.log_metric(f"train_parser/{k}", v)
            live.next_step()
    train_s = time.perf_counter() - t0
    model = model.cpu().eval()
    scored = evaluate(model, held, cfg.batch_size) if held else None
    metrics = {
        "train_images": len(train),
        "heldout_images": scored["images"] if scored else 0,
        "epochs": cfg.epochs,
        "train_seconds": round(train_s, 1),
        "final_loss": round(history[-1]["loss"], 4),
        "first_epoch_loss": round(history[0]["loss"], 4),
        "device": str(device),
        **init,
        **({k: v for k, v in scored.items() if k != "images"} if scored else {"miou": None, "miou_gap": None}),
    }
    return model, {"metrics": metrics, "history": history}
