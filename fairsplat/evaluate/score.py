"""Score one base variant (and its enhanced twin) on every planned subject: self- and cross-reenactment rows.

**Self-reenactment** is stage train_ff's held-out protocol
(``fairsplat.ff.evaluate.score_subject``), on the same pieces: the batch is
``gather(frames, [[source]] * T, targets)``, the avatar is rendered by
``render_targets`` at each target's tracked FLAME parameters and camera over
mid-grey, scored by the metric registry (``compute_all``) on the whole crop and
masked to the crop's foreground alpha, and ΔITA compares the rendered skin
(the avatar's skin-region Gaussians) with the source crop's skin (its label
map): positive = the output is lighter. It is re-stated here, not called,
because it also needs LPIPS-VGG and the enhancer between render and score;
``tests/test_evaluate.py`` checks that the plain variant's numbers equal
``score_subject``'s exactly.

**Cross-reenactment**: the avatar of A is rendered at driver B's crops (B's
expression, pose, translation and camera; A's own shape), then landmarks are
detected on each output (``retrack.Retracker``) and the identity embedding is
taken (dlib's ResNet, ``fairsplat.metrics.identity``). The FLAME fit of the
outputs is batched per variant; the metrics against the drivers (CSIM, AED,
APD, AKD) are computed once both sides are in (``fairsplat.evaluate.run``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from fairsplat.avatar.avatar import Avatar
from fairsplat.ff.data import Frames, gather
from fairsplat.ff.render import render_targets
from fairsplat.metrics import colour
from fairsplat.metrics.registry import Absent, compute_all

IMAGE_METRICS = ("psnr", "ssim", "lpips_alex", "lpips_vgg")
"""Self-reenactment image metrics, each also ``_masked``: PSNR (dB), SSIM, LPIPS AlexNet and VGG (real weights)."""
SELF_COLUMNS = tuple(m + s for m in IMAGE_METRICS for s in ("", "_masked")) + ("delta_ita",)
CROSS_COLUMNS = ("csim", "aed", "apd", "akd", "delta_ita")


def _u8(x: Tensor) -> np.ndarray:  # [B, 3, S, S] in [0, 1] -> uint8 [B, S, S, 3]
    return (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def _floats(vals) -> list[float | None]:
    return [None if v is None or not np.isfinite(v) else float(v) for v in vals]


@torch.no_grad()
def render(avatar: Avatar, frames: Frames, source: int, rows: Sequence[int], backend: str = "auto"):
    """The avatar of ``source``'s subject at the tracks of ``rows``: rgb, alpha, skin [T, 1|3, S, S] and the batch."""
    from fairsplat.refine.run import as_attributes

    batch = gather(frames, [[source]] * len(rows), list(rows))
    batch["shape"] = avatar.shape[None].expand(len(rows), -1)  # the avatar's identity, whoever drives it
    attrs = as_attributes(avatar)
    attrs = type(attrs)(*(t.expand(len(rows), *t.shape[1:]) for t in attrs))
    size = int(frames.images.shape[-1])
    rgb, alpha, skin = render_targets(avatar.binding, attrs, batch, size, backend, with_skin=True)
    return rgb.clamp(0, 1), alpha, skin, batch


def source_ita(frames: Frames, source: int) -> float | None:
    """ITA of the source crop's skin (its label map), as train_ff's protocol measures it; None without label maps."""
    if frames.skin is None:
        return None
    img = frames.images[source : source + 1].float() / 255
    return colour.ita(img, frames.skin[source : source + 1, 0] > 127)[0]


def render_ita(rgb: Tensor, alpha: Tensor, skin: Tensor, ref: float | None) -> list[float | None]:
    """ΔITA of each render against ``ref``: the skin where the avatar's skin Gaussians land (positive = lighter)."""
    mask = (skin / alpha.clamp_min(1e-6) > 0.5) & (alpha > 0.5)  # [T, 1, S, S]
    vals = colour.ita(rgb, mask[:, 0])
    return [None if ref is None or v is None else v - ref for v in vals]


def image_scores(rgb: Tensor, target: Tensor, mask: Tensor, vgg: int | None) -> dict[str, list[float | None]]:
    """The registry's metrics per image, full and masked; LPIPS-VGG only on the first ``vgg`` images (None = all)."""
    n = len(rgb)
    out: dict[str, list[float | None]] = {}
    for name, vals in compute_all(rgb, target, mask, names=IMAGE_METRICS[:3]).items():
        if name != "ms_ssim_scales":
            out[name] = [None] * n if isinstance(vals, Absent) else _floats(vals)
    k = n if vgg is None else min(vgg, n)
    out["lpips_vgg"], out["lpips_vgg_masked"] = [None] * n, [None] * n
    if k:
        for name, vals in compute_all(rgb[:k], target[:k], mask[:k], names=("lpips_vgg",)).items():
            if not isinstance(vals, Absent):
                out[name][:k] = _floats(vals)
    return out


def self_rows(name: str, avatar: Avatar, frames: Frames, source: int, targets: Sequence[int], post, backend: str,
              vgg: int | None, keep: set[int] = frozenset()) -> tuple[list[dict], dict[str, dict[int, np.ndarray]]]:  # fmt: skip
    """Rows of ``name`` (and ``name+enhancer`` when ``post``) on ``targets``; and the renders of ``keep`` rows."""
    from fairsplat.evaluate.variants import ENHANCED

    rgb, alpha, skin, batch = render(avatar, frames, source, targets, backend)
    ref = source_ita(frames, source)
    outs = {name: rgb} | ({name + ENHANCED: post(rgb)} if post is not None else {})
    rows, kept = [], {}
    for variant, img in outs.items():
        scores = image_scores(img, batch["target"], batch["alpha"], vgg)
        dita = render_ita(img, alpha, skin, ref)
        for j, t in enumerate(targets):
            rows.append({"variant": variant, "protocol": "self", "subject_id": frames.subject[t],
                         "fitzpatrick": frames.fitzpatrick[t], "target_id": frames.ids[t], "driver_subject": None,
                         **{c: scores[c][j] for c in SELF_COLUMNS[:-1]}, "delta_ita": dita[j]})  # fmt: skip
        kept[variant] = {t: u for t, u in zip(targets, _u8(img)) if t in keep}
    return rows, kept


def cross_outputs(name: str, avatar: Avatar, frames: Frames, source: int, drivers: Sequence[int], post, retracker,
                  embed: Callable, backend: str) -> list[dict]:  # fmt: skip
    """Raw cross-reenactment outputs of A (``source``'s subject) driven by ``drivers``: landmarks, embedding, ΔITA."""
    from fairsplat.evaluate.variants import ENHANCED

    rgb, alpha, skin, _ = render(avatar, frames, source, drivers, backend)
    ref = source_ita(frames, source)
    outs = {name: rgb} | ({name + ENHANCED: post(rgb)} if post is not None else {})
    rows = []
    for variant, img in outs.items():
        dita = render_ita(img, alpha, skin, ref)
        for j, (d, u8) in enumerate(zip(drivers, _u8(img))):
            face = retracker.face(u8)
            rows.append({"variant": variant, "protocol": "cross", "subject_id": frames.subject[source],
                         "fitzpatrick": frames.fitzpatrick[source], "driver_subject": frames.subject[d],
                         "driver_id": frames.ids[d], "driver_row": d, "delta_ita": dita[j], "face": face is not None,
                         "landmarks": None if face is None else np.asarray(face.landmarks, np.float64),
                         "embedding": None if face is None else embed(u8, face)})  # fmt: skip
    return rows


def retrack_outputs(rows: list[dict], frames: Frames, retracker) -> float:
    """Fit FLAME to every output with a face, per variant, one shape per avatar; fills ``expr``/``rot``. -> seconds"""
    secs = 0.0
    for variant in dict.fromkeys(r["variant"] for r in rows):
        found = [r for r in rows if r["variant"] == variant and r["face"]]
        if not found:
            continue
        lms = np.stack([r["landmarks"] for r in found])
        K = frames.track["K"][[r["driver_row"] for r in found]].numpy()
        fit = retracker.fit(lms, K, [r["subject_id"] for r in found])
        for r, e, q in zip(found, fit.expr, fit.rot):
            r["expr"], r["rot"] = e, q
        secs += fit.seconds
    return secs

