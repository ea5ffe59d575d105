"""Every stage's ``per_fitzpatrick`` block comes from metrics/fairness.py, in its one shape.

Each stage's metrics function runs on small synthetic inputs with
``per_fitzpatrick`` spied on at the stage's import site: the block the stage
returns must be the table fairness.py built (not a hand-rolled one edited
afterwards), with ``n_subjects``/``n_items`` and ``<stat>_ci`` beside its stat.
"""

from pathlib import Path

import numpy as np
import pytest

from fairsplat.labels import FITZPATRICK
from fairsplat.metrics import fairness

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def spy(monkeypatch):
    """``spy(module)``: patch ``module.per_fitzpatrick`` to record every table it builds."""
    tables: list[dict] = []

    def install(module) -> list[dict]:
        def recording(*a, **k):
            out = fairness.per_fitzpatrick(*a, **k)
            tables.append(out)
            return out

        monkeypatch.setattr(module, "per_fitzpatrick", recording)
        return tables

    return install


def assert_one_shape(per: dict) -> None:
    assert set(per) <= set(FITZPATRICK) and per
    for block in per.values():
        assert isinstance(block["n_subjects"], int) and isinstance(block["n_items"], int)
        for key in (k for k in block if k.endswith("_ci")):
            assert key[:-3] in block, key
            assert block[key] is None or (len(block[key]) == 2 and block[key][0] <= block[key][1]), (key, block[key])


def _types(n: int) -> list[str]:
    return [FITZPATRICK[i % 6] for i in range(n)]


def test_ingest(spy):
    from fairsplat.sources import ingest
    from fairsplat.sources.manifest import Record

    tables = spy(ingest)
    records = [Record(f"i{i}", "synth", f"s{i % 12}", "x.png", fitzpatrick_gt=t) for i, t in enumerate(_types(36))]
    m = ingest.ingest_metrics(records, [], type("Cfg", (), {"source": "synth"})())
    assert m["per_fitzpatrick"] is tables[-1]["per_fitzpatrick"]
    assert_one_shape(m["per_fitzpatrick"])
    assert m["per_fitzpatrick"]["I"] == {"images": 6, "subjects": 2, "n_subjects": 2, "n_items": 6}


def test_curate(spy):
    from fairsplat.curate import metrics
    from fairsplat.curate.item import Analysis
    from fairsplat.sources.manifest import Record

    tables = spy(metrics)
    types = _types(24)
    records = [Record(f"i{i}", "synth", f"s{i % 12}", "x.png", fitzpatrick_gt=t, ita_gt=10.0) for i, t in enumerate(types)]
    analyses = [Analysis(f"i{i}", ita=10.0 + i % 3, fitzpatrick=t, ita_raw=10.0 + i % 3, landmark_source="ground_truth", n_faces=1)
                for i, t in enumerate(types)]  # fmt: skip
    stats = {t: {"eligible": 4, "selected": 4, "shortfall": 0} for t in FITZPATRICK}
    manifest = [{"image_id": r.image_id, "fitzpatrick_gt": r.fitzpatrick_gt, "fg_iou_ellipse": 0.8} for r in records]
    m = metrics.curate_metrics(records, analyses, 24, stats, {r.image_id: "train" for r in records}, ["train"], manifest)
    assert m["per_fitzpatrick"] is tables[-1]["per_fitzpatrick"] and list(m["per_fitzpatrick"]) == list(FITZPATRICK)
    assert_one_shape(m["per_fitzpatrick"])
    p = m["per_fitzpatrick"]["II"]
    assert (p["selected"], p["n_items"], p["n_subjects"], p["ita_type_accuracy"]) == (4, 4, 2, 1.0)
    assert p["ita_mean_ci"] is not None and "selected_ci" not in p


def _confusion(rng) -> np.ndarray:
    from fairsplat.metrics.segmentation import confusion

    gt = rng.integers(0, 4, (8, 8))
    return confusion(gt, np.where(rng.random((8, 8)) < 0.3, 0, gt))


def test_parse_and_train_parser(spy):
    from fairsplat.parse import metrics, run
    from fairsplat.parse.data import Item

    rng = np.random.default_rng(0)
    items = [Item(f"i{i}", "test", t, "gt", Path("c.png"), None, subject_id=f"s{i % 12}") for i, t in enumerate(_types(24))]
    rows = [{"image_id": it.image_id, "fitzpatrick": it.fitzpatrick} for it in items]
    scored = {it.image_id: ("test", _confusion(rng)) for it in items}
    tables = spy(run)
    m = run.parse_metrics(items, rows, [], scored, "trained", 1.0)
    assert m["per_fitzpatrick"] is tables[-1]["per_fitzpatrick"]
    assert_one_shape(m["per_fitzpatrick"])
    assert m["per_fitzpatrick"]["I"]["miou_vs_labels_ci"] is not None and m["miou_vs_labels_gap"] is not None

    tables = spy(metrics)
    s = metrics.summarise([{"fitzpatrick": it.fitzpatrick, "subject_id": it.subject_id, "confusion": scored[it.image_id][1]}
                           for it in items])  # fmt: skip
    assert s["per_fitzpatrick"] is tables[-1]["per_fitzpatrick"]
    assert_one_shape(s["per_fitzpatrick"])


def test_track(spy):
    from fairsplat.track import evaluate

    tables = spy(evaluate)
    rng = np.random.default_rng(1)
    per_row = {k: rng.random(36) for k in evaluate.ROW_METRICS}
    fitted = np.ones(36, bool)
    m = evaluate.summarise(per_row, _types(36), fitted, subjects=[f"s{i % 12}" for i in range(36)])
    assert m["per_fitzpatrick"] is tables[-1]["per_fitzpatrick"]
    assert_one_shape(m["per_fitzpatrick"])
    assert m["per_fitzpatrick"]["I"]["n_subjects"] == 2 and m["nme_worst_type"] in FITZPATRICK


def test_degrade(spy):
    from fairsplat.degrade import report
    from fairsplat.degrade.run import REGIONS

    tables = spy(report)
    rng = np.random.default_rng(2)
    rows = [{"image_id": f"i{i}", "subject_id": f"s{i % 12}", "fitzpatrick": t, "augmentations": [], "steps": ["x"],
             "mad": float(rng.random()), "ssim_loss": float(rng.random()),
             **{f"{m}_{r}": float(rng.random()) for r in REGIONS for m in ("mad", "ssim_loss", "mad_full")}}
            for i, t in enumerate(_types(24))]  # fmt: skip
    rejects = [{"image_id": "bad", "fitzpatrick": "VI", "reason": "no_mask"}]
    m = report.degrade_metrics(25, rows, rejects, 1.0, 1, 1, dict.fromkeys(REGIONS, 1.0))
    assert m["per_fitzpatrick"] is tables[-1]["per_fitzpatrick"]
    assert_one_shape(m["per_fitzpatrick"])
    assert m["per_fitzpatrick"]["VI"]["rejected_images"] == 1 and m["per_fitzpatrick"]["VI"]["pairs"] == 4
