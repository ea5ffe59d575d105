"""A dependency-light look at a head mesh: orthographic z-buffer in numpy, PNG via PIL.

Why here and not the splat rasteriser: the head model must be checkable
before (and independently of) the Gaussian renderer, and tests need a label
image to ask questions like "does a blink hide the eye?". This draws faces,
not splats, at low resolution; it is a diagnostic, not a renderer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairsplat.labels import LABEL

# One flat colour per CelebAMask-HQ class, for eyeballing region labels.
REGION_COLOURS: dict[int, tuple[int, int, int]] = {
    LABEL["skin"]: (224, 180, 150),
    LABEL["nose"]: (235, 140, 110),
    LABEL["l_eye"]: (80, 170, 240),
    LABEL["r_eye"]: (40, 110, 220),
    LABEL["l_brow"]: (120, 70, 30),
    LABEL["r_brow"]: (90, 50, 20),
    LABEL["l_ear"]: (200, 200, 90),
    LABEL["r_ear"]: (170, 170, 60),
    LABEL["mouth"]: (60, 10, 20),
    LABEL["u_lip"]: (210, 60, 90),
    LABEL["l_lip"]: (170, 30, 70),
    LABEL["hair"]: (70, 60, 55),
    LABEL["neck"]: (200, 160, 130),
}

VIEWS: dict[str, np.ndarray] = {
    # rotation applied to vertices; the camera looks down -Z of the rotated frame
    "front": np.eye(3),
    "left": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),  # subject's left side faces camera
    "three_quarter": np.array([[0.7071, 0.0, -0.7071], [0.0, 1.0, 0.0], [0.7071, 0.0, 0.7071]]),
}


def rasterize_ids(
    verts: np.ndarray,  # [V, 3] already in view space
    faces: np.ndarray,  # [F, 3]
    size: int,
    extent: float,  # half-width of the square view, metres
    centre: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:  # face id per pixel [H, W] (-1 = none), depth [H, W]
    """Orthographic z-buffer: nearest face (largest z) per pixel centre."""
    scale = size / (2.0 * extent)
    px = (verts[:, 0] - centre[0]) * scale + size / 2.0
    py = (centre[1] - verts[:, 1]) * scale + size / 2.0
    depth = np.full((size, size), -np.inf)
    ids = np.full((size, size), -1, dtype=np.int64)
    for f, (a, b, c) in enumerate(faces):
        xs, ys, zs = px[[a, b, c]], py[[a, b, c]], verts[[a, b, c], 2]
        x0, x1 = max(int(np.floor(xs.min())), 0), min(int(np.ceil(xs.max())), size - 1)
        y0, y1 = max(int(np.floor(ys.min())), 0), min(int(np.ceil(ys.max())), size - 1)
        if x0 > x1 or y0 > y1:
            continue
        det = (ys[1] - ys[2]) * (xs[0] - xs[2]) + (xs[2] - xs[1]) * (ys[0] - ys[2])
        if abs(det) < 1e-12:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        w0 = ((ys[1] - ys[2]) * (gx - xs[2]) + (xs[2] - xs[1]) * (gy - ys[2])) / det
        w1 = ((ys[2] - ys[0]) * (gx - xs[2]) + (xs[0] - xs[2]) * (gy - ys[2])) / det
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        z = w0 * zs[0] + w1 * zs[1] + w2 * zs[2]
        win_d = depth[y0 : y1 + 1, x0 : x1 + 1]
        closer = inside & (z > win_d)
        win_d[closer] = z[closer]
        ids[y0 : y1 + 1, x0 : x1 + 1][closer] = f
    return ids, depth


def label_image(verts: np.ndarray, faces: np.ndarray, regions: np.ndarray, size: int = 96, extent: float = 0.14,
                view: str = "front") -> np.ndarray:  # [H, W] region id, 0 = background
    """Per-pixel region label of the visible surface, as a parser would see it."""
    ids, _ = rasterize_ids(verts @ VIEWS[view].T, faces, size, extent)
    out = np.zeros(ids.shape, dtype=np.int64)
    out[ids >= 0] = regions[ids[ids >= 0]]
    return out


def shaded_image(verts: np.ndarray, faces: np.ndarray, regions: np.ndarray, size: int, extent: float,
                 view: str) -> np.ndarray:  # [H, W, 3] uint8
    """Region colours times a simple head-on Lambert term (so relief is visible)."""
    v = verts @ VIEWS[view].T
    ids, _ = rasterize_ids(v, faces, size, extent)
    tri = v[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.35, 0.45, 0.82])
    shade = 0.25 + 0.75 * np.clip(n @ (light / np.linalg.norm(light)), 0.0, 1.0)
    palette = np.array([REGION_COLOURS.get(i, (255, 0, 255)) for i in range(max(REGION_COLOURS) + 1)], float)
    img = np.full(ids.shape + (3,), 245.0)
    hit = ids >= 0
    img[hit] = palette[regions[ids[hit]]] * shade[ids[hit], None]
    return img.clip(0, 255).astype(np.uint8)


def save_preview(path: str | Path, verts: np.ndarray, faces: np.ndarray, regions: np.ndarray,
                 size: int = 320, extent: float = 0.14, views: tuple[str, ...] = ("front", "left")) -> None:
    """Write a PNG with the given views side by side."""
    from fairsplat.io.images import save_png

    panels = [shaded_image(verts, faces, regions, size, extent, v) for v in views]
    save_png(path, np.concatenate(panels, axis=1))
