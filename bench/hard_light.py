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


def render_hard(ids: set[str], out: Path, params: Path, head: Path, lighting: str = "hard") -> Path:
    """Identities ``ids`` (synth identity ids, without the ``synth/`` prefix) under ``lighting`` (``hard``, or
    ``studio``: hard's light once per identity) -> ``<out>/curated``; returns it."""
    import yaml

    from fairsplat.head.model import HeadModel
    from fairsplat.io.tables import write_table
    from fairsplat.sections.synth import SynthParams
    from fairsplat.synth.dataset import IDENTITIES_SCHEMA, build, manifest_schema

    cfg = replace(SynthParams.load(params).synth_config(), lighting=lighting, workers=1)
    t0 = time.perf_counter()
    manifest, identities, _ = build(HeadModel.load(head), cfg, out / "synth", only=ids)
    write_table(manifest, manifest_schema(cfg), out / "synth" / "manifest.parquet")
    write_table(identities, IDENTITIES_SCHEMA, out / "synth" / "identities.parquet")
    (out / "synth" / "lighting.txt").write_text(lighting)  # which preset this directory holds
    print(f"hard-set: {manifest.num_rows} renders of {len(ids)} identities, {time.perf_counter() - t0:.0f} s", flush=True)
    p = yaml.safe_load(Path(params).read_text())
    p["ingest"]["path"] = str(out / "synth")
    (out / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    py, common = sys.executable, ["--params", str(out / "params.yaml"), "--metrics-dir", str(out / "metrics")]
    subprocess.run([py, "-m", "stages.ingest", "--out", str(out / "ingest"), *common], check=True, cwd=ROOT)
    subprocess.run([py, "-m", "stages.curate", "--ingest", str(out / "ingest"), "--out", str(out / "curated"),
                    "--plots", str(out / "plots"), *common], check=True, cwd=ROOT)  # fmt: skip
    return out / "curated"
