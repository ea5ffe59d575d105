"""Filling the frozen encoder trunk's feature store before the trainers start (``fairsplat.models.feature_store``).

The trainers run in one process per variant with one torch thread each; left to themselves, each would
compute the trunk's levels of the crops it meets, twice over for crops both variants use. Warming the store
first, in the main process with every thread, computes each crop once; the workers then read from disk.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fairsplat.ff.data import Frames
from fairsplat.models.encoders import build_encoder, encoder_input
from fairsplat.models.feature_store import FeatureStore, features_dir
from fairsplat.models.generator import GeneratorConfig
from fairsplat.train.jobs import torch_threads


def warm_features(model: GeneratorConfig, frames: Frames, rows: Sequence[int] | None = None, threads: int = 0,
                  batch: int = 32, progress: bool = True) -> dict:  # fmt: skip
    """Store the trunk's levels of ``frames`` crops (all when ``rows`` is None); a no-op for a trained encoder.

    Returns what the metrics record: whether a store is used, how many crops it computed now
    (0 when an earlier stage or run already did) and how many it holds for this stage.
    """
    if not model.encoder.stores_features():
        return {"feature_store": False}
    enc = build_encoder(model.encoder)
    store = FeatureStore(features_dir(), enc.signature())
    images = frames.images if rows is None else frames.images[torch.as_tensor(list(rows), dtype=torch.long)]
    side = model.encoder.image_size
    with torch_threads(threads):
        computed = store.warm(images, enc.trunk_levels, lambda x: encoder_input(x, side), batch, progress)
    return {"feature_store": True, "features_computed": computed, "features_crops": len(images)}


def encoded_rows(frames: Frames, train_split: str, heldout_splits: Sequence[str], first: int) -> list[int]:
    """The crops a generator stage feeds its encoder: any crop of a training subject can be a source; a
    held-out (watch, eval) subject's sources are its first ``first`` crops, its other crops only targets."""
    rows = [r for rows in frames.by_subject([train_split]).values() for r in rows]
    rows += [r for rows in frames.by_subject(list(heldout_splits)).values() for r in rows[:first]]
    return sorted(set(rows))
