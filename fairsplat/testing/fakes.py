"""Fake stage outputs for tests and the bench: a synthetic face-like crop with CelebAMask-HQ
labels (``synthetic_face``), a tiny curate-like folder (``fake_curated``) and the bad inputs
every stage must record (``add_bad_inputs``). Tests that need *real* upstream outputs use the
tiny pipeline (``fairsplat.testing.pipeline``) instead.

Why its own texture model: to check that measured damage follows the
configured region strengths, every region must carry the *same* texture
statistics. One multi-octave noise field covers the whole head, and each region
only adds a small tint, so a region's damage reflects its strength, not its
content. Layout is jittered per seed (positions, sizes) like different faces.
"""

from __future__ import annotations

import numpy as np

from fairsplat.degrade import kernels as K
from fairsplat.degrade import resample as R
from fairsplat.labels import LABEL

# Per-part colour offsets: equal chroma (0.04, orthogonal to luma, so equal
# luma too) at hue 0 (skin) or +-120 degrees, arranged so that every pair of
# touching parts differs by the same amount. No region then has more colour,
# or more edge contrast, to lose than another: damage reflects strength only.
_U = np.array([1.0, -0.299 / 0.587, 0.0])
_U /= np.linalg.norm(_U)
_V = np.cross(K.LUMA.astype(np.float64), _U)
_V /= np.linalg.norm(_V)


def _hue(deg: float) -> tuple[float, ...]:
    a = np.deg2rad(deg)
    return tuple(0.04 * (np.cos(a) * _U + np.sin(a) * _V))


_TINT = {name: _hue(0) for name in ("skin", "l_ear", "r_ear", "neck")}
_TINT.update({name: _hue(120) for name in ("hair", "nose", "l_eye", "r_eye", "u_lip", "l_lip")})
_TINT.update({name: _hue(-120) for name in ("l_brow", "r_brow", "mouth")})


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def face_labels(size: int, rng: np.random.Generator) -> np.ndarray:
    """A frontal face layout in CelebAMask-HQ ids. -> [size, size] uint8"""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # normalised coords
    j = lambda v, a=0.02: v + rng.uniform(-a, a)  # noqa: E731 - per-face jitter
    lab = np.zeros((size, size), np.uint8)
    cx = j(0.5)
    lab[(yy > j(0.72)) & (np.abs(xx - cx) < j(0.13))] = LABEL["neck"]
    lab[_ellipse(yy, xx, j(0.40), cx, j(0.34), j(0.30))] = LABEL["hair"]
    lab[_ellipse(yy, xx, j(0.52), cx, j(0.28), j(0.21))] = LABEL["skin"]
    for side, name in ((-1, "r_ear"), (1, "l_ear")):
        lab[_ellipse(yy, xx, j(0.52), cx + side * j(0.215), j(0.06), j(0.03))] = LABEL[name]
    ey, bx = j(0.44), j(0.09)
    for side, eye, brow in ((-1, "r_eye", "r_brow"), (1, "l_eye", "l_brow")):
        lab[_ellipse(yy, xx, ey - j(0.055, 0.01), cx + side * bx, j(0.015, 0.004), j(0.055, 0.01))] = LABEL[brow]
        lab[_ellipse(yy, xx, ey, cx + side * bx, j(0.025, 0.005), j(0.045, 0.008))] = LABEL[eye]
    lab[_ellipse(yy, xx, j(0.54), cx, j(0.08), j(0.04))] = LABEL["nose"]
    my, mw = j(0.67), j(0.08, 0.01)
    lab[_ellipse(yy, xx, my - 0.018, cx, j(0.02, 0.004), mw)] = LABEL["u_lip"]
    lab[_ellipse(yy, xx, my + 0.02, cx, j(0.024, 0.004), mw * 0.9)] = LABEL["l_lip"]
    lab[_ellipse(yy, xx, my, cx, j(0.012, 0.003), mw * 0.8)] = LABEL["mouth"]
    return lab


def texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-octave, mostly-luma noise texture around 0.5, the same statistics everywhere. -> [3, H, W]"""
    out = np.zeros((3, size, size), np.float32)
    for cell in (2, 4, 8, 16):  # octaves at 512 px scale: pores to skin folds
        c = max(1, round(cell * size / 512))
        n = max(2, size // c)
        lum = R.resize_bilinear(rng.standard_normal((n, n)).astype(np.float32), size, size)
        chrom = R.resize_bilinear(rng.standard_normal((3, n, n)).astype(np.float32), size, size)
        out += 0.05 * lum + 0.015 * chrom
    return out + 0.5


def synthetic_face(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image [H, W, 3] float32 in [0, 1], labels [H, W] uint8); mid-grey flat backdrop."""
    rng = np.random.default_rng(seed)
    lab = face_labels(size, rng)
    tex = texture(size, rng)  # [3, H, W]
    tint = np.zeros((256, 3), np.float32)
    for name, rgb in _TINT.items():
        tint[LABEL[name]] = rgb
    img = tex + tint[lab].transpose(2, 0, 1)
    img[:, lab == LABEL["background"]] = 0.5
    return np.ascontiguousarray(np.clip(img, 0, 1).transpose(1, 2, 0)), lab


# Rough skin colours (sRGB, 0-1) per Fitzpatrick type, light to dark, for fixtures only.
_TYPE_RGB = {
    "I": (0.93, 0.80, 0.72), "II": (0.86, 0.70, 0.58), "III": (0.76, 0.58, 0.45),
    "IV": (0.62, 0.45, 0.33), "V": (0.45, 0.31, 0.22), "VI": (0.30, 0.20, 0.15),
}  # fmt: skip


def typed_face(size: int, seed: int, fitzpatrick: str) -> tuple[np.ndarray, np.ndarray]:
    """``synthetic_face`` with its head tinted to a skin colour of the given type. -> (uint8 [H, W, 3], [H, W])"""
    img, lab = synthetic_face(size, seed)
    fg = lab != LABEL["background"]
    colour = np.asarray(_TYPE_RGB[fitzpatrick], np.float32) * 2.0  # texture is centred on 0.5
    img[fg] = np.clip(img[fg] * colour, 0.0, 1.0)
    return np.round(img * 255).astype(np.uint8), lab


def fake_curated(out, per_type: int = 2, frames: int = 2, size: int = 64, seed: int = 0) -> list[dict]:
    """Write a tiny curate-like output (crops/, labels/, manifest.parquet) for tests and benches.

    ``per_type`` identities per Fitzpatrick type, ``frames`` crops each; the
    first half of each type's identities is ``train``, the rest ``test``.
    Columns are the subset of curate's manifest that parsing and degradation read.
    """
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from fairsplat.labels import FITZPATRICK

    out = Path(out)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rows = []
    for t_i, t in enumerate(FITZPATRICK):
        for k in range(per_type):
            subject = f"synth_{t}_{k}"
            for f in range(frames):
                img, lab = typed_face(size, seed * 100_003 + t_i * 1000 + k * 10 + f, t)
                name = f"{subject}_f{f}"
                Image.fromarray(img).save(out / "crops" / f"{name}.png")
                Image.fromarray(lab, mode="L").save(out / "labels" / f"{name}.png")
                rows.append({
                    "image_id": name, "source": "synth", "subject_id": subject,
                    "split": "train" if k < max(1, per_type // 2) else "test",
                    "path": f"crops/{name}.png", "mask_path": f"labels/{name}.png",
                    "fitzpatrick": t, "fitzpatrick_gt": t,
                })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), out / "manifest.parquet")
    return rows


def add_bad_inputs(curated) -> None:
    """Append to a ``fake_curated`` directory a crop with no label map ("nomask") and one whose
    label map is half the crop's size ("small"): the bad inputs every stage must record."""
    import shutil
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    curated = Path(curated)
    rows = pq.read_table(curated / "manifest.parquet").to_pylist()
    src = curated / rows[0]["path"]
    h, w = np.asarray(Image.open(src)).shape[:2]
    shutil.copyfile(src, curated / "crops" / "nomask.png")
    shutil.copyfile(src, curated / "crops" / "small.png")
    Image.fromarray(np.ones((h // 2, w // 2), np.uint8), mode="L").save(curated / "labels" / "small.png")
    for name, mask in (("nomask", None), ("small", "labels/small.png")):
        rows.append({**rows[0], "image_id": name, "subject_id": name, "split": "test",
                     "path": f"crops/{name}.png", "mask_path": mask})  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), curated / "manifest.parquet")
