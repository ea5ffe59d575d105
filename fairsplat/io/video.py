"""MP4 files: H.264 through PyAV (it ships its own ffmpeg), written atomically.

Why here: turntables (``fairsplat avatar``), refinement side-by-sides and
reenactments all write videos; one writer in ``io`` keeps the format in one
place and keeps the stages that write videos from importing each other's
code (a stage's DVC deps follow its imports).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairsplat.io.atomic import atomic_path


def write_video(path: str | Path, frames: np.ndarray, fps: int = 12) -> None:  # frames uint8 [T, H, W, 3]
    """H.264 MP4 (yuv420p: H and W must be even), written to a temp file and renamed."""
    import av

    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[3] == 3, (frames.dtype, frames.shape)
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"write_video: {frames.shape[2]}x{frames.shape[1]} px; H.264 (yuv420p) needs even sides")
    with atomic_path(Path(path), suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w") as box:
            stream = box.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    box.mux(packet)
            for packet in stream.encode():
                box.mux(packet)
