"""Params validation: unknown keys and bad values fail fast, naming the key."""

import pytest
import yaml

from fairsplat.config import ParamsError, load_section, validate_all
from fairsplat.sections.head import HeadParams


def write(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_defaults_and_kebab_keys(tmp_path):
    cfg = load_section("head", write(tmp_path, {"head": {"n-shape": 30, "flame-path": None}}))
    assert isinstance(cfg, HeadParams)
    assert cfg.n_shape == 30 and cfg.flame_path is None and cfg.n_expr == 10


@pytest.mark.parametrize(
    "section, needle",
    [
        ({"n-shap": 3}, "head.n-shap: unknown key"),
        ({"n-shape": -3}, "head.n-shape"),
        ({"n-shape": 2.5}, "head.n-shape"),
        ({"n-shape": "20"}, "head.n-shape"),
        ({"flame-path": 3}, "head.flame-path"),
    ],
)
def test_bad_values_name_the_key(tmp_path, section, needle):
    with pytest.raises(ParamsError, match=needle.replace(".", r"\.")):
        load_section("head", write(tmp_path, {"head": section}))


def test_unknown_section_refused(tmp_path):
    with pytest.raises(ParamsError, match="unknown params section"):
        validate_all(write(tmp_path, {"head": {}, "heda": {}}))


def test_repo_params_are_valid():
    from pathlib import Path

    validate_all(Path(__file__).resolve().parents[1] / "params.yaml")
