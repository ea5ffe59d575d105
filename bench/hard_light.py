"""SynthHeads identities rendered again under ``synth.lighting: hard`` (or ``studio``), then ingested and curated (stage CLIs).

Shared by the benches that need the same identities under another light: bench/parser_encoders.py (held-out
identities: a hard-light test set for the parser) and bench/uv_ablation.py (phase 2's identities: a phase 2 from
another appearance domain). Everything else of the synth section stays params.yaml's, so identities, motion,
cameras and backgrounds are the default run's; only the light differs (scene.py ``hard``). Curation of SynthHeads
crops follows the ground-truth landmarks, so each hard crop has the default crop's geometry (same box, alpha and
label map, checked by the callers that rely on it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_synth(ids: set[str], out: Path, cfg, head: Path) -> int:
    """SynthHeads identities ``ids`` rendered with ``cfg`` (a SynthConfig) into ``out`` (images, manifest and
    identities tables, as stage synth writes them); returns the number of renders."""
    from fairsplat.head.model import HeadModel
    from fairsplat.io.tables import write_table
    from fairsplat.synth.dataset import IDENTITIES_SCHEMA, build, manifest_schema

    t0 = time.perf_counter()
    manifest, identities, _ = build(HeadModel.load(head), cfg, out, only=ids)
    write_table(manifest, manifest_schema(cfg), out / "manifest.parquet")
    write_table(identities, IDENTITIES_SCHEMA, out / "identities.parquet")
    print(f"{manifest.num_rows} {cfg.lighting} renders of {len(ids)} identities at {cfg.size} px, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    return manifest.num_rows


def render_hard(ids: set[str], out: Path, params: Path, head: Path, lighting: str = "hard") -> Path:
    """Identities ``ids`` (synth identity ids, without the ``synth/`` prefix) under ``lighting`` (``hard``, or
    ``studio``: hard's light once per identity) -> ``<out>/curated``; returns it."""
    import yaml

    from fairsplat.sections.synth import SynthParams

    build_synth(ids, out / "synth", replace(SynthParams.load(params).synth_config(), lighting=lighting, workers=1), head)
    (out / "synth" / "lighting.txt").write_text(lighting)  # which preset this directory holds
    p = yaml.safe_load(Path(params).read_text())
    p["ingest"]["path"] = str(out / "synth")
    (out / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    py, common = sys.executable, ["--params", str(out / "params.yaml"), "--metrics-dir", str(out / "metrics")]
    subprocess.run([py, "-m", "stages.ingest", "--out", str(out / "ingest"), *common], check=True, cwd=ROOT)
    subprocess.run([py, "-m", "stages.curate", "--ingest", str(out / "ingest"), "--out", str(out / "curated"),
                    "--plots", str(out / "plots"), *common], check=True, cwd=ROOT)  # fmt: skip
    return out / "curated"


def swap_in(frames, subjects: list[str], out: Path, lighting: str, root: Path) -> dict:
    """The crops of ``subjects`` in ``frames`` (fairsplat.ff.data.Frames) replaced in place by their renders
    under ``lighting`` (made in ``out`` by :func:`render_hard` on first use). The crop geometry must be the
    default one: every swapped crop's alpha is checked equal to the default crop's."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from fairsplat.io.images import load_grey, load_rgb

    curated, made = out / "curated", out / "synth" / "lighting.txt"
    if made.is_file() and made.read_text() != lighting:
        raise ValueError(f"{out} holds {made.read_text()} renders, not {lighting}")
    if not (curated / "manifest.parquet").is_file():
        ids = {s.split("/", 1)[1] for s in subjects}  # curate's subject id is "synth/<identity_id>"
        render_hard(ids, out, root / "params.yaml", root / "assets/head/head.npz", lighting)
    other = {r["image_id"]: r for r in pq.read_table(curated / "manifest.parquet").to_pylist()}
    want, swapped = set(subjects), 0
    rows = [i for i, s in enumerate(frames.subject) if s in want]
    for i in rows:
        r = other.get(frames.ids[i])
        if r is None:
            continue
        if not np.array_equal(load_grey(curated / r["alpha_path"]), frames.alpha[i, 0].numpy()):
            raise ValueError(f"{frames.ids[i]}: the {lighting} crop's alpha differs from the default crop's")
        frames.images[i] = torch.from_numpy(load_rgb(curated / r["path"]).transpose(2, 0, 1).copy())
        swapped += 1
    return {"dir": str(curated), "lighting": lighting, "identities": len(subjects), "rows": len(rows), "swapped": swapped}
