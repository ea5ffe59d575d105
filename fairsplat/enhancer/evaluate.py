"""Held-out scoring: every pair of the held-out subjects, enhanced output and degraded input against clean.

One row per pair with the numbers of ``fairsplat/enhancer/scores.py`` for the
enhanced output (``<name>``), the degraded input (``<name>_input``) and the
gain (``<name>_gain``, positive = better); masks and regions come from the
pair's parsed label map, ITA from its ``skin`` label. ``families``: the step
families that fired on the pair (blur, colour, geometry, splat; a pair usually
has several).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fairsplat.enhancer.data import Pairs, batch_of
from fairsplat.enhancer.scores import gain, image_scores


@torch.no_grad()
def score_pairs(model, pairs: Pairs, rows: Sequence[int], batch: int = 8, device="cpu") -> list[dict]:
    """One row per held-out pair (module docstring)."""
    model.eval()
    out_rows = []
    for start in range(0, len(rows), batch):
        chunk = list(rows[start : start + batch])
        b = batch_of(pairs, chunk)
        enhanced = model(b["degraded"].to(device)).float().cpu()
        mine = image_scores(enhanced, b["clean"], b["labels"])
        theirs = image_scores(b["degraded"], b["clean"], b["labels"])
        for j, i in enumerate(chunk):
            row = {"pair_id": pairs.pair_ids[i], "image_id": pairs.image_ids[i], "subject_id": pairs.subject[i],
                   "split": pairs.split[i], "fitzpatrick": pairs.fitzpatrick[i], "families": pairs.families(i)}  # fmt: skip
            for key in mine:
                row[key], row[f"{key}_input"] = mine[key][j], theirs[key][j]
                if key != "delta_ita":
                    row[f"{key}_gain"] = gain(key, mine[key][j], theirs[key][j])
            out_rows.append(row)
    return out_rows
