"""bench/parser_encoders.py's helpers: every candidate is a valid train_parser config, held-out subjects."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.parser_encoders import VARIANTS, heldout_subjects, main, params_for, thin_train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_is_a_valid_reduced_budget_config(variant):
    cfg = params_for(variant, ROOT / "params.yaml", 1)
    assert cfg.epochs == 1 and cfg.eval_every == 0 and cfg.checkpoint_every == 0
    tc = cfg.train_config()
    assert tc.model.encoder == VARIANTS[variant]["encoder"] and tc.encoder_weights == VARIANTS[variant]["encoder_weights"]
    assert (tc.illuminant, tc.blur) == (VARIANTS[variant].get("illuminant", 0.0), VARIANTS[variant].get("blur", 0.0))
    # everything else is params.yaml's: the candidates differ only in what VARIANTS says
    default = params_for(variant, ROOT / "params.yaml", None)
    assert cfg.model_dump() | {"epochs": 0} == default.model_dump() | {"epochs": 0}


def test_heldout_subjects_are_those_never_in_a_train_split(tmp_path):
    rows = [("a_0", "train", "s/a"), ("a_1", "val", "s/a"), ("b_0", "val", "s/b"), ("b_1", "test", "s/b"), ("c_0", "train", "s/c")]
    table = pa.table({"image_id": [r[0] for r in rows], "split": [r[1] for r in rows], "path": [f"crops/{r[0]}.png" for r in rows],
                      "subject_id": [r[2] for r in rows]})  # fmt: skip
    pq.write_table(table, tmp_path / "manifest.parquet")
    assert heldout_subjects(tmp_path, ("val", "test")) == {"s/b"}  # s/a has a train crop: not held out


def test_table_prints_one_row_per_run(tmp_path, capsys):
    run = {"variant": "vgg16_imagenet", "encoder": "vgg16", "init": "imagenet", "illuminant": 0.0, "train_crops": 840,
           "steps": 53, "s_per_step_in_run": 9.5, "default": {"miou": 0.8, "worst_type": "VI", "worst_miou": 0.78, "images": 161},
           "hard": {"miou": 0.6, "worst_type": "I", "worst_miou": 0.5, "images": 180}}  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(run))
    main(["table", str(tmp_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[2] == "| vgg16_imagenet | vgg16 | imagenet | - | 840 | 53 | 9.5 | 0.8 | VI 0.78 | 0.6 | I 0.5 | 161 + 180 |"


def test_thin_train_keeps_every_nth_train_crop_and_all_held_out():
    from types import SimpleNamespace as NS

    items = [NS(split="train", i=i) for i in range(7)] + [NS(split="val", i=7), NS(split="test", i=8)]
    assert [it.i for it in thin_train(items, ("train",), 2)] == [0, 2, 4, 6, 7, 8]
    assert thin_train(items, ("train",), 1) == items
