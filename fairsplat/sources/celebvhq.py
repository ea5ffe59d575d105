"""``celebvhq``: CelebV-HQ video clips, sampled into still frames with PyAV.

``celebvhq_info.json`` (as released) holds ``meta_info`` (``appearance_mapping``,
``action_mapping``) and ``clips``: ``{clip_id: {ytb_id, duration: {start_sec,
end_sec}, bbox: {top, bottom, left, right}, attributes: {appearance: [0/1...],
action: [...], emotion: {...}}, version}}``. The processed clips (already
cropped to ``bbox`` and trimmed to ``duration`` by CelebV-HQ's own script) are
``<clip_id>.mp4`` somewhere under ``clips_dir`` (default: the root).

Each clip yields ``n_frames`` frames evenly spaced over the clip (first and last
included), decoded with PyAV and written as ``<out_dir>/celebvhq/<clip_id>/
<frame:06d>.png``. Subject = the YouTube id: clips of one video usually show
one person, and keeping them in one split is the conservative choice. Gender
and age come from the ``Male`` / ``Young`` appearance attributes.
Clips listed in the JSON but absent on disk (deleted YouTube videos are
common) are appended to ``missing`` as ``(id, "clip_absent")``; undecodable
clips as ``(id, "undecodable: ...")`` and clips without a single frame as
``(id, "no_frames")``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from fairsplat.io.images import save_png
from fairsplat.sources.manifest import DatasetMissing, Record, require

NAME = "celebvhq"
INFO = "celebvhq_info.json"
LAYOUT = """
<root>/
  celebvhq_info.json          {"meta_info": {...}, "clips": {<clip_id>: {"ytb_id", "duration", "bbox", "attributes"}}}
  <clips_dir>/**/<clip_id>.mp4   processed clips (clips_dir defaults to <root>)
"""


def frame_indices(total: int, n: int) -> list[int]:
    """``n`` frame numbers evenly spread over ``total`` frames (all if fewer)."""
    if total <= 0 or n <= 0:
        return []
    if n >= total:
        return list(range(total))
    return sorted({int(round(x)) for x in np.linspace(0, total - 1, n)})


def sample_frames(path: str | Path, n: int) -> Iterator[tuple[int, np.ndarray]]:  # (index, uint8 [H, W, 3])
    """Decode ``n`` evenly spaced frames. The frame count comes from the
    container when it has one, else from a first decoding pass."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames
        if total <= 0:
            total = sum(1 for _ in container.decode(stream))
    wanted = set(frame_indices(total, n))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                yield i, frame.to_ndarray(format="rgb24")
            if i >= max(wanted, default=-1):
                break


def _attr(info: dict, meta: dict, name: str) -> int | None:
    mapping = meta.get("appearance_mapping") or []
    values = (info.get("attributes") or {}).get("appearance") or []
    if name in mapping and mapping.index(name) < len(values):
        return int(values[mapping.index(name)])
    return None


def _labels(info: dict, meta: dict) -> dict[str, str | None]:
    male, young = _attr(info, meta, "Male"), _attr(info, meta, "Young")
    return {
        "label_gender": None if male is None else ("Male" if male else "Female"),
        "label_age": None if young is None else ("young" if young else "not_young"),
    }


def _load_info(root: Path, param: str) -> tuple[dict, dict]:
    try:
        data = json.loads((root / INFO).read_text())
        return data.get("meta_info") or {}, data["clips"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DatasetMissing(param, root, LAYOUT, f"{INFO} is not CelebV-HQ's format ({err})") from None


def iter_records(
    root: str | Path,
    *,
    out_dir: str | Path,
    param: str = "ingest.path",
    clips_dir: str | Path | None = None,
    n_frames: int = 4,
    missing: list[tuple[str, str]] | None = None,
) -> Iterator[Record]:
    root = require(root, param, LAYOUT, INFO)
    meta, clips = _load_info(root, param)
    search = Path(clips_dir) if clips_dir is not None else root
    files = {p.stem: p for p in sorted(search.rglob("*.mp4"))}
    for clip_id in sorted(clips):
        info = clips[clip_id]
        if clip_id not in files:
            if missing is not None:
                missing.append((f"{NAME}/{clip_id}", "clip_absent"))
            continue
        try:
            frames = list(sample_frames(files[clip_id], n_frames))
        except Exception as err:  # noqa: BLE001  (corrupt clip, no video stream, any decoder error: record it)
            if missing is not None:
                missing.append((f"{NAME}/{clip_id}", f"undecodable: {type(err).__name__}: {err}"[:200]))
            continue
        if not frames:  # a container whose video stream holds no frame: recorded, not silently dropped
            if missing is not None:
                missing.append((f"{NAME}/{clip_id}", "no_frames"))
            continue
        for i, rgb in frames:
            path = Path(out_dir) / NAME / clip_id / f"{i:06d}.png"
            save_png(path, rgb)
            yield Record(
                image_id=f"{NAME}/{clip_id}/{i:06d}",
                source=NAME,
                subject_id=f"{NAME}/{info.get('ytb_id') or clip_id}",
                path=str(path),
                frame_index=i,
                **_labels(info, meta),
            )
