"""Identity similarity (CSIM): the cosine of two face-identity embeddings.

CSIM of one output = cos(emb(output), emb(source)), where the source is the
photo the avatar was made from; 1 = the same direction, 0 = unrelated. The
reenactment literature (GAGAvatar, LAM) embeds with ArcFace; no ArcFace weights
can be obtained offline here, so the embedder is **dlib's 128-d ResNet**
(``face_recognition_models``, via :func:`fairsplat.faces.detect.descriptor`:
the 68 landmarks align a 150 px chip). dlib's embeddings are trained for a
Euclidean threshold (distance < 0.6 = same person) and are near unit length,
so their cosine is about 1 - d^2 / 2: 0.82 at the threshold. Numbers from the
two embedders are not comparable; the metrics name the embedder
(``csim`` = dlib, ``csim_arcface``).

``EMBEDDERS`` is the registry: name -> a function (uint8 image [H, W, 3], Face)
-> embedding [D], or the reason it is absent.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ARCFACE_ABSENT = ("ArcFace CSIM absent: no ArcFace weights can be downloaded here, and onnxruntime (to run a user's "
                  "ArcFace ONNX) is not a dependency of this project; CSIM uses dlib's 128-d ResNet")  # fmt: skip


def csim(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # [N, D] x2 -> [N]
    """Cosine similarity per row; NaN where either embedding is zero or NaN."""
    assert a.shape == b.shape and a.ndim == 2, (a.shape, b.shape)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(1) / (na * nb)
    return np.where((na > 0) & (nb > 0), out, np.nan)


def csim_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    for x, y in zip(a, b):
        dot = sum(float(p) * float(q) for p, q in zip(x, y))
        out.append(dot / (sum(float(p) ** 2 for p in x) ** 0.5 * sum(float(q) ** 2 for q in y) ** 0.5))
    return np.array(out)


def dlib_embedding(img: np.ndarray, face) -> np.ndarray:  # uint8 [H, W, 3], Face -> [128]
    from fairsplat.faces.detect import descriptor

    return descriptor(img, face)


def arcface_reason(path: str | None) -> str:
    """Why ArcFace CSIM is absent (always, here: see ARCFACE_ABSENT)."""
    return ARCFACE_ABSENT + ("" if path is None else f" (evaluate.arcface-path={path} is set but cannot be run)")


EMBEDDERS: dict[str, Callable[[np.ndarray, object], np.ndarray] | str] = {
    "dlib": dlib_embedding,
    "arcface": ARCFACE_ABSENT,
}
"""name -> embedding function, or the reason it is absent."""
