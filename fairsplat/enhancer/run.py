"""Stage ``train_enhancer``'s library: build the model, train it on the shared skeleton, score held-out pairs.

Order of work (every process of an ``accelerate launch`` runs it; only the
main one scores and writes): load the pairs of the training and held-out
splits -> build the model (tiny random init, or SD-Turbo + LoRA) -> train
(resumable, dvclive curves) -> score every held-out pair, enhanced and input.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fairsplat.enhancer.config import EnhancerTrainConfig
from fairsplat.enhancer.data import Pairs, augmentation_rates, load_pairs, on_the_fly_augmentations
from fairsplat.enhancer.evaluate import score_pairs
from fairsplat.enhancer.task import EnhancerTask, watch_rows
from fairsplat.models.enhancer import Enhancer, parameter_counts
from fairsplat.train import loop
from fairsplat.train.accel import seed_everything
from fairsplat.train.loop import LoopConfig, step_loop_config
from fairsplat.train.losses import lpips_ready


@dataclass
class EnhancerResult:
    model: Enhancer  # trained, CPU, eval mode
    rows: list[dict]  # held-out rows (fairsplat/enhancer/evaluate.py)
    pairs: Pairs
    history: list[dict]
    info: dict


def loop_config(cfg: EnhancerTrainConfig) -> LoopConfig:
    """Seed 001's optimiser and schedule: AdamW, linear warm-up then linear decay to 0, every weight decayed."""
    return step_loop_config(cfg, "train_enhancer", schedule=cfg.schedule, decay_norms_and_biases=True)


def model_factory(cfg: EnhancerTrainConfig) -> Callable[[], Enhancer]:
    """The tiny default (every weight trains), or SD-Turbo from its local directory with LoRA (pix2pix-turbo's
    wiring: ``residual`` is off there, it would zero the pretrained decoder's output conv)."""
    if cfg.sd_turbo_path is None:
        return lambda: Enhancer(cfg.model)

    def sd_turbo() -> Enhancer:
        from fairsplat.enhancer import sdturbo
        from fairsplat.enhancer.lora import apply_lora

        vae, unet, text, sched = sdturbo.load(cfg.sd_turbo_path, cfg.prompt)
        if cfg.prediction_type != "auto":
            sched = {**sched, "prediction_type": cfg.prediction_type}
        mcfg = replace(cfg.model, vae=dict(vae.config), unet=dict(unet.config), scheduler=dict(sched),
                       text_tokens=text.shape[1], text_learned=False, residual=False)  # fmt: skip
        return apply_lora(Enhancer(mcfg, vae=vae, unet=unet, text=text), cfg.lora)

    return sd_turbo


def train_enhancer(cfg: EnhancerTrainConfig, pairs: Pairs, acc, live=None, progress: bool = True,
                   checkpoint_dir: Path | None = None, fingerprint: str = "", stop_at: int | None = None):  # fmt: skip
    ready, _ = lpips_ready(cfg.loss.net)
    train = pairs.rows(cfg.train_splits)
    task = EnhancerTask(cfg, pairs, train, watch_rows(pairs, cfg.watch_split, cfg.watch_pairs), model_factory(cfg), ready)
    seed_everything(cfg.seed)
    return loop.fit(task, loop_config(cfg), acc, live=live, progress=progress, checkpoint_dir=checkpoint_dir,
                    fingerprint=fingerprint, stop_at=stop_at)  # fmt: skip


def run_train_enhancer(cfg: EnhancerTrainConfig, pairs_dir: Path, curated: Path, acc, live=None, progress: bool = True,
                       checkpoint_dir: Path | None = None, fingerprint: str = "") -> EnhancerResult:  # fmt: skip
    splits = sorted({*cfg.train_splits, *cfg.eval_splits, *([cfg.watch_split] if cfg.watch_split else [])})
    pairs = load_pairs(pairs_dir, curated, splits)
    if not pairs.rows(cfg.train_splits):
        raise ValueError(f"train_enhancer.train-splits {list(cfg.train_splits)}: no pairs in {pairs_dir}")
    t0 = time.perf_counter()
    res = train_enhancer(cfg, pairs, acc, live, progress, checkpoint_dir, fingerprint)
    train_s = time.perf_counter() - t0
    model = res.model.eval()
    rows: list[dict] = []
    t1 = time.perf_counter()
    if acc.is_main_process:
        rows = score_pairs(model, pairs, pairs.rows(cfg.eval_splits), cfg.eval_batch, acc.device)
    ready, reason = lpips_ready(cfg.loss.net)
    counts = parameter_counts(model)
    info = {"train_seconds": round(train_s, 1), "eval_seconds": round(time.perf_counter() - t1, 1),
            "steps": res.steps, "resumed_from": res.resumed_from, "pairs_train": len(pairs.rows(cfg.train_splits)),
            "perceptual_loss": ready, "perceptual_loss_absent_reason": reason, "parameters": counts["total"],
            "trainable_parameters": counts["trainable"], "sd_turbo": cfg.sd_turbo_path is not None,
            "crop_size": int(pairs.clean.shape[-1]),
            "augment_rates": augmentation_rates(pairs, pairs.rows(cfg.train_splits), on_the_fly_augmentations(cfg)),
            "augment_rates_seed": {k: v.prob for k, v in (on_the_fly_augmentations(replace(cfg, augment=True,
                                                                                          augment_rate=1.0)) or {}).items()}}  # fmt: skip
    return EnhancerResult(model.cpu(), rows, pairs, res.history, info)
