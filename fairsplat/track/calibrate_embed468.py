"""Calibrate ``embed468_table.py``: MediaPipe's 468 mesh points on the head (a developer tool, not a stage).

    python -m fairsplat.track.calibrate_embed468 --synth data/raw/synth --head assets/head/head.npz --views all

Runs the tracker's MediaPipe backend (faces/landmarks.py ``mediapipe_faces``) on
every render of the ``--split`` identities (train; val and test, which the
tracker is judged on, are refused), keeps rows with one face, back-projects each
mesh point onto the ground-truth posed head (:func:`fairsplat.track.embed468.pick`)
and writes the robust embedding (:func:`~fairsplat.track.embed468.robust_embedding`)
with its provenance. ``--views frontal``: only yaw-0 renders with both eyes open
(the views where no mesh point is hidden and MediaPipe's eyes are on the eyes);
``all``: every view (README "Landmark backends" gives the measurement that chose).
``--cache``: an .npz of the meshes, reused when it exists (MediaPipe takes ~1 min).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

app = typer.Typer(add_completion=False)
TABLE = Path(__file__).with_name("embed468_table.py")


def meshes(root: Path, splits: list[str], cache: Path | None) -> tuple[list[dict], np.ndarray]:
    """(manifest rows with exactly one MediaPipe face, their meshes [N, 468, 2] in SynthHeads px: centres at +0.5)."""
    import pyarrow.parquet as pq

    from fairsplat.faces.landmarks import mediapipe_faces
    from fairsplat.io.images import load_rgb

    rows = [r for r in pq.read_table(root / "manifest.parquet").to_pylist() if r["split"] in splits]
    ids = np.array([r["image_id"] for r in rows])
    if cache is not None and cache.exists():
        z = np.load(cache)
        assert (z["ids"] == ids).all(), "cache holds other images"
        pts = z["points"][..., :2]
    else:
        pts = np.full((len(rows), 468, 2), np.nan, np.float32)
        for i, r in enumerate(rows):
            faces = mediapipe_faces(load_rgb(root / r["rgb_path"]))
            if len(faces) == 1:
                pts[i] = faces[0].points[:, :2]
        if cache is not None:
            np.savez(cache, ids=ids, points=pts)
    keep = np.isfinite(pts[:, 0, 0])
    return [r for r, k in zip(rows, keep) if k], pts[keep].astype(np.float64) + 0.5


def back_project(head, rows: list[dict], mesh: np.ndarray) -> np.ndarray:  # -> [N, 468, 3] template frame, NaN: no hit
    """Each mesh point's ray through the ground-truth posed head of its render, as a template-frame point."""
    import torch

    from fairsplat.track.embed468 import pick, template_points
    from fairsplat.head.flame import FlameLayer

    flame = FlameLayer(head, torch.float64)
    faces = head.faces.astype(np.int64)
    out = np.full(mesh.shape[:2] + (3,), np.nan)
    for i, r in enumerate(rows):
        t = lambda k: torch.tensor([r[k]], dtype=torch.float64)  # noqa: E731
        verts = flame(shape=t("shape"), expr=t("expr"), pose=t("pose")).vertices[0].numpy()  # [V, 3] world
        view, K = np.asarray(r["viewmat"]).reshape(4, 4), np.asarray(r["K"]).reshape(3, 3)
        R, tr = view[:3, :3], view[:3, 3]
        f, bary = pick(mesh[i], verts @ R.T + tr, K, faces)  # the ray through each pixel, nearest hit
        hit = f >= 0
        out[i, hit] = template_points(head, f[hit], bary[hit])
    return out


def residuals(head, rows: list[dict], mesh: np.ndarray, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:  # -> [N, 468]
    """Distance of each mesh point from its embedded point projected with the render's ground truth,
    in inter-ocular distances (outer eye corners of the ground-truth landmarks, as the NME)."""
    import torch

    from fairsplat.track.camera import project
    from fairsplat.track.landmarks import LandmarkFlame

    lf = LandmarkFlame(head, torch.float64, embedding=(faces, bary))
    t = lambda k: torch.tensor([r[k] for r in rows], dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        p3 = lf(t("shape"), t("expr"), t("pose"))[0]  # [N, 468, 3] world
    view, K = t("viewmat").reshape(-1, 4, 4), t("K").reshape(-1, 3, 3)
    pix = project(p3 @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3], K).numpy()  # [N, 468, 2]
    gt = np.array([r["landmarks"] for r in rows], np.float64).reshape(-1, 68, 2)
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    return np.linalg.norm(pix - mesh, axis=-1) / iod[:, None]


def point_weights(res: np.ndarray, floor: float = 0.05) -> np.ndarray:  # [N, 468] -> [468], mean 1
    """Inverse-variance weight of each mesh index: 1 / (RMS residual^2 + floor^2), scaled to mean 1.
    The floor (a well-placed point's residual on frontal renders, ~0.03-0.05) keeps the best points
    from taking over."""
    w = 1.0 / (np.sqrt((res**2).mean(0)) ** 2 + floor**2)
    return w / w.mean()


def frontal_rows(rows: list[dict]) -> np.ndarray:  # -> [N] bool
    """Frontal renders with both eyes open (the tracker's ``frontal`` condition, track/pipeline.py)."""
    from fairsplat.track.pipeline import view_conditions

    return view_conditions(np.array([r["yaw"] for r in rows]), np.array([r["expr"] for r in rows]))["frontal"]


def render_table(head_key: dict, faces: np.ndarray, bary: np.ndarray, weights: np.ndarray, provenance: list[str]) -> str:
    bary = np.round(bary, 6)
    bary[:, 0] = 1.0 - bary[:, 1] - bary[:, 2]  # exact sum after rounding
    rows = "\n".join(f"    ({float(a)!r}, {float(b)!r}, {float(c)!r}),  # {k}" for k, (a, b, c) in enumerate(bary))
    return (
        '"""GENERATED by ``python -m fairsplat.track.calibrate_embed468``; do not edit by hand, re-run it.\n\n'
        "MediaPipe mesh index -> (triangle of the head, barycentric weights), fitted on SynthHeads train renders\n"
        "(fairsplat/track/embed468.py). Provenance:\n\n" + "".join(f"- {p}\n" for p in provenance) + '"""\n\n'
        f"HEAD = {head_key!r}\n\nFACES = (\n" + "".join(f"    {int(f)},  # {k}\n" for k, f in enumerate(faces))
        + f")\n\nBARY = (\n{rows}\n)\n\nWEIGHTS = (  # calibrate_embed468.point_weights on every train view\n"
        + "".join(f"    {round(float(w), 4)!r},  # {k}\n" for k, w in enumerate(weights)) + ")\n"
    )  # fmt: skip


@app.command()
def main(
    synth: Path = typer.Option(..., help="SynthHeads directory (stage synth output)"),
    head: Path = typer.Option(Path("assets/head/head.npz"), help="head asset the renders were made with"),
    split: list[str] = typer.Option(["train"], help="identity splits to calibrate on (train only)"),
    views: str = typer.Option("all", help="all | frontal (yaw 0, eyes open)"),
    cache: Path = typer.Option(None, help="meshes .npz, written once and reused"),
    out: Path = typer.Option(TABLE, help="generated table module"),
) -> None:
    from fairsplat.track.embed468 import faces_hash, robust_embedding
    from fairsplat.head.model import HeadModel

    if views not in ("all", "frontal") or set(split) - {"train"}:
        raise typer.BadParameter(f"--views {views!r} (all | frontal), --split {split} (train only)")
    model = HeadModel.load(head)
    all_rows, all_mesh = meshes(synth, split, cache)
    keep = frontal_rows(all_rows) if views == "frontal" else np.ones(len(all_rows), bool)
    rows, mesh = [r for r, k in zip(all_rows, keep) if k], all_mesh[keep]
    samples = back_project(model, rows, mesh)
    faces, bary, spread = robust_embedding(model, samples)
    res = residuals(model, all_rows, all_mesh, faces, bary)  # [N, 468] every train view: the weights
    weights = point_weights(res)
    hits = np.isfinite(samples[..., 0]).mean()
    key = {"n_vertices": model.n_vertices, "n_faces": len(model.faces), "faces_sha256": faces_hash(model.faces)}
    prov = [f"renders: {len(rows)} of split(s) {', '.join(split)} with one MediaPipe face; views: {views}",
            f"rays that hit the head: {hits:.3f}; median distance of a sample from its point: "
            f"{1000 * np.median(spread):.1f} mm (per index 5-95 %: {1000 * np.percentile(spread, 5):.1f}-"
            f"{1000 * np.percentile(spread, 95):.1f} mm)",
            f"every train view ({len(all_rows)}), at the ground truth: mean distance of a mesh point from its embedded "
            f"point {res.mean():.4f} inter-ocular (frontal eyes-open views {res[frontal_rows(all_rows)].mean():.4f}); "
            f"weights {weights.min():.2f}-{weights.max():.2f}"]  # fmt: skip
    out.write_text(render_table(key, faces, bary, weights, prov))
    typer.echo(f"calibrate_embed468: {len(rows)} renders, {views}; median spread {1000 * np.median(spread):.1f} mm -> {out}")


if __name__ == "__main__":
    app()
