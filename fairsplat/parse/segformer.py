"""A user's pretrained Segformer face parser, loaded offline through transformers.

Give a local Hugging Face checkpoint directory (``config.json`` with
``id2label``, weights, optionally ``preprocessor_config.json``), e.g. a
CelebAMask-HQ-trained face-parsing Segformer. Nothing is downloaded:
``local_files_only=True``.

Label ids are mapped to ours *by name*, because checkpoints order and spell
their classes differently ("l_eye", "left_eye", "Left Eye"). Names are
normalised (lower case, spaces and dashes to underscores) and looked up in
``ALIASES``; a name that is neither one of our 19 classes nor an alias must be
given in ``parse.segformer-label-map``, otherwise loading fails naming it:
guessing a class would corrupt every mask downstream in silence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from fairsplat.labels import CELEBAMASK_CLASSES, LABEL
from fairsplat.parse.base import ModelBackend, Options

ALIASES: dict[str, str] = {
    "bg": "background", "face": "skin", "face_skin": "skin",
    "eyeglasses": "eye_g", "glasses": "eye_g", "eye_glasses": "eye_g",
    "left_eye": "l_eye", "right_eye": "r_eye",
    "left_eyebrow": "l_brow", "right_eyebrow": "r_brow", "left_brow": "l_brow", "right_brow": "r_brow",
    "l_eyebrow": "l_brow", "r_eyebrow": "r_brow",
    "left_ear": "l_ear", "right_ear": "r_ear",
    "inner_mouth": "mouth", "mouth_interior": "mouth", "teeth": "mouth",
    "upper_lip": "u_lip", "lower_lip": "l_lip",
    "earring": "ear_r", "earrings": "ear_r", "necklace": "neck_l",
    "clothes": "cloth", "clothing": "cloth",
}  # fmt: skip


def _norm(name: str) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").split())


def label_lut(id2label: Mapping[int | str, str], extra: Mapping[str, str] | None = None) -> np.ndarray:
    """Model class id -> our id. -> [C] uint8; raises ValueError naming every unmappable label."""
    extra = {_norm(k): _norm(v) for k, v in (extra or {}).items()}
    bad_targets = sorted(v for v in extra.values() if v not in LABEL)
    if bad_targets:
        raise ValueError(f"segformer-label-map targets {bad_targets} are not CelebAMask-HQ classes {CELEBAMASK_CLASSES}")
    ids = sorted(int(k) for k in id2label)
    if ids != list(range(len(ids))):
        raise ValueError(f"id2label ids must be 0..C-1, got {ids}")
    lut = np.zeros(len(ids), np.uint8)
    unknown = []
    for i in ids:
        raw = id2label[i] if i in id2label else id2label[str(i)]
        n = _norm(raw)
        target = extra.get(n) or (n if n in LABEL else ALIASES.get(n))
        if target is None:
            unknown.append(raw)
        else:
            lut[i] = LABEL[target]
    if unknown:
        raise ValueError(
            f"segformer labels {unknown} have no CelebAMask-HQ counterpart; "
            "map them with parse.segformer-label-map (e.g. {'" + _norm(unknown[0]) + "': 'skin'})"
        )
    return lut


def _preprocessing(path: Path) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Input size and normalisation from preprocessor_config.json; Segformer's defaults otherwise."""
    size, mean, std = (512, 512), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    f = path / "preprocessor_config.json"
    if f.exists():
        pp = json.loads(f.read_text())
        s = pp.get("size", size)
        size = (int(s["height"]), int(s["width"])) if isinstance(s, dict) else (int(s), int(s))
        if pp.get("do_normalize", True):
            mean, std = pp.get("image_mean", mean), pp.get("image_std", std)
        else:
            mean, std = [0.0] * 3, [1.0] * 3
    return size, np.asarray(mean, np.float32), np.asarray(std, np.float32)


class SegformerBackend(ModelBackend):
    """SegformerForSemanticSegmentation.from_pretrained(local dir); logits at 1/4 res, upsampled."""

    name = "segformer"

    def __init__(self, opts: Options):
        super().__init__(opts)
        from transformers import SegformerForSemanticSegmentation

        path = opts.segformer_path
        if path is None:
            raise ValueError("parse.segformer-path: required when parse.backend is segformer")
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"parse.segformer-path: {path} has no config.json (a local checkpoint dir)")
        self.model = SegformerForSemanticSegmentation.from_pretrained(str(path), local_files_only=True)
        self.model.to(opts.device).eval()
        self.lut = label_lut(self.model.config.id2label, opts.label_map)
        self.input_size, mean, std = _preprocessing(path)
        self.mean = torch.from_numpy(mean).view(1, 3, 1, 1).to(opts.device)
        self.std = torch.from_numpy(std).view(1, 3, 1, 1).to(opts.device)

    @torch.no_grad()
    def logits(self, x):  # [B, 3, h, w] in [0, 1] -> [B, C, h/4, w/4]
        return self.model(pixel_values=(x - self.mean) / self.std).logits
