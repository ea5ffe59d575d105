"""Smoke test of stage ``degrade`` on tiny params: pairs, manifest, rejects, determinism, metrics.

Inputs: a copy of the tiny pipeline's curate output (``tiny_pipeline``,
tests/conftest.py) with two bad crops added (``add_bad_inputs``), parsed by
stage ``parse`` with the ground-truth backend; then one accepted mask is
deleted and one replaced by a wrong-size map, so degrade itself must reject
with ``no_mask`` and ``mask_size_mismatch``.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from fairsplat.degrade.report import effective_strength, ordered, region_means
from fairsplat.degrade.run import REGIONS
from fairsplat.testing.fakes import add_bad_inputs

K = 2


def _run(module: str, root: Path, params: dict, *args: str) -> dict:
    import importlib

    (root / "params.yaml").write_text(yaml.safe_dump(params))
    app = importlib.import_module(f"stages.{module}").app
    res = CliRunner().invoke(app, [*args, "--params", str(root / "params.yaml"), "--metrics-dir",
                                   str(root / "metrics"), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads((root / "metrics" / f"{module}.json").read_text())


@pytest.fixture(scope="module")
def inputs(tiny_pipeline, tmp_path_factory):
    """(work dir, id of the crop whose mask is gone, id of the one whose mask has the wrong size, good crops)."""
    root = tmp_path_factory.mktemp("degrade")
    tiny_pipeline.copy("curate", root / "curated")
    good = pq.read_table(root / "curated" / "manifest.parquet").num_rows
    add_bad_inputs(root / "curated")
    _run("parse", root, {"parse": {"backend": "ground_truth"}}, "--curated", str(root / "curated"),
         "--out", str(root / "parsed"), "--plots", str(root / "plots_parse"))  # fmt: skip
    parsed = sorted(pq.read_table(root / "parsed" / "manifest.parquet").to_pylist(), key=lambda r: r["mask_path"])
    (root / "parsed" / parsed[0]["mask_path"]).unlink()  # parse said it made it, the file is gone
    Image.fromarray(np.ones((40, 64), np.uint8), mode="L").save(root / "parsed" / parsed[1]["mask_path"])  # wrong size
    return root, parsed[0]["image_id"], parsed[1]["image_id"], good


def _degrade(root: Path, out: str, workers: int, k: int = K) -> dict:
    params = {"degrade": {"k": k, "workers": workers, "seed": 1}}
    return _run("degrade", root, params, "--curated", str(root / "curated"), "--parsed", str(root / "parsed"),
                "--out", str(root / out), "--plots", str(root / f"plots_{out}"))  # fmt: skip


def test_degrade_stage(inputs):
    root, gone, wrong, good = inputs
    m = _degrade(root, "pairs", workers=1)
    total, ok = good + 2, good - 2  # two bad crops added; two good crops' masks broken
    assert m["images_total"] == total and m["images_accepted"] + m["images_rejected"] == total
    assert m["images_accepted"] == ok and m["pairs"] == K * ok and m["pairs_measured"] == K * ok
    assert m["rejected_by_reason"] == {"mask_size_mismatch": 1, "no_mask": 3}
    rej = {r["image_id"]: r for r in pq.read_table(root / "pairs" / "rejects.parquet").to_pylist()}
    assert rej["nomask"]["reason"] == "no_mask" and rej["nomask"]["detail"].startswith("parse: no_mask")
    assert rej["small"]["reason"] == "no_mask" and "mask_size_mismatch" in rej["small"]["detail"]
    assert rej[gone]["reason"] == "no_mask" and rej[wrong]["reason"] == "mask_size_mismatch"

    man = pq.read_table(root / "pairs" / "manifest.parquet").to_pylist()
    assert len(man) == K * ok and sorted({r["pair_index"] for r in man}) == list(range(K))
    for r in man[:4]:
        for key in ("clean_path", "degraded_path", "mask_path"):
            assert (root / "pairs" / r[key]).exists()
        rec = json.loads(r["record"])
        assert [s["name"] for s in rec["steps"]] == r["steps"] and len(r["steps"]) >= 3
        clean = np.asarray(Image.open(root / "pairs" / r["clean_path"]))
        deg = np.asarray(Image.open(root / "pairs" / r["degraded_path"]))
        assert clean.shape == deg.shape and not np.array_equal(clean, deg)
    assert set(m["damage_mad"]) == set(REGIONS) and set(m["per_fitzpatrick"]) == {"I", "II", "III", "IV", "V", "VI"}
    assert m["configured_strength"] == {"mouth": 0.9, "eyes": 0.7, "hair": 0.6, "nose": 0.5, "skin": 0.4}
    eff = m["effective_strength"]  # MAD over the every-strength-1 control's MAD: at most 1, above 0
    assert all(0.0 < v <= 1.0 for v in eff.values()), eff
    assert eff["mouth"] > eff["skin"], eff
    assert sum(v["pairs"] for v in m["per_fitzpatrick"].values()) == m["pairs"]
    assert (root / "plots_pairs" / "pairs.png").exists() and (root / "plots_pairs" / "damage.csv").exists()


def test_degrade_stage_output_does_not_depend_on_workers(inputs):
    root, _, _, _ = inputs
    _degrade(root, "pairs_w1", workers=1, k=1)  # one pair per crop: as many pairs as crops, enough to shard
    _degrade(root, "pairs_w2", workers=2, k=1)
    a = pq.read_table(root / "pairs_w1" / "manifest.parquet").to_pylist()
    b = pq.read_table(root / "pairs_w2" / "manifest.parquet").to_pylist()
    assert a == b
    for r in a:
        assert (root / "pairs_w1" / r["degraded_path"]).read_bytes() == (root / "pairs_w2" / r["degraded_path"]).read_bytes()


def test_damage_summaries():
    rows = [{f"mad_{r}": v for r, v in zip(REGIONS, (5, 4, 3, 2, 1))}, {f"mad_{r}": None for r in REGIONS}]
    means = region_means(rows, "mad")
    assert means == dict(zip(REGIONS, (5.0, 4.0, 3.0, 2.0, 1.0))) and ordered(means) is True
    assert ordered({**means, "hair": 4.5}) is False and ordered({**means, "nose": None}) is None
    rows = [{"mad_mouth": 0.2, "mad_full_mouth": 0.4}, {"mad_mouth": 0.1, "mad_full_mouth": 0.1},
            {"mad_mouth": None, "mad_full_mouth": 0.3}]  # fmt: skip
    eff = effective_strength(rows)
    assert eff["mouth"] == pytest.approx(0.3 / 0.5) and eff["skin"] is None  # ratio of sums


def test_control_pairs_share_draws_and_bound_the_damage():
    """The control (every strength 1) fires the same steps with the same params; damage only grows."""
    from fairsplat.degrade.pipeline import DegradeParams, make_pairs
    from fairsplat.degrade.run import Settings
    from fairsplat.testing.fakes import synthetic_face

    img, lab = synthetic_face(96, seed=3)
    st = Settings(DegradeParams(augment=False), 3, 1, Path("."))
    real = make_pairs(img, lab, 3, 7, st.params)
    ctrl = make_pairs(img, lab, 3, 7, st.control)
    for (a, ra), (b, rb) in zip(real, ctrl):
        assert ra == rb  # same steps, params and masks
        assert np.abs(b - img).mean() > np.abs(a - img).mean()
