"""Params validation: unknown keys and bad values fail fast, naming the key."""

import pytest
import yaml

from fairsplat.config import ParamsError
from fairsplat.sections.registry import load_section, validate_all
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


def test_every_head_key_is_documented_and_in_repo_params():
    """Each field has a docstring, and params.yaml lists every key (so `dvc exp run -S head.<key>=` can set it)."""
    from pathlib import Path

    repo = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for name, field in HeadParams.model_fields.items():
        assert field.description, f"head.{name} has no docstring"
        assert name.replace("_", "-") in repo["head"], f"head.{name.replace('_', '-')} missing from params.yaml"


def _dvc_override(tmp_path, *overrides):
    """Apply ``dvc exp run -S`` overrides the way DVC does (dvc.utils.hydra.apply_overrides) to a copy of params.yaml."""
    from pathlib import Path

    from dvc.utils.hydra import apply_overrides

    p = tmp_path / "params.yaml"
    p.write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    apply_overrides(str(p), list(overrides))
    return p


def test_dvc_set_param_overrides_use_kebab_keys(tmp_path):
    flame, masks = tmp_path / "flame2023.pkl", tmp_path / "m.pkl"  # the section checks that files exist
    flame.touch()
    masks.touch()
    p = _dvc_override(tmp_path, "head.n-shape=30", f"head.flame-path={flame}", f"head.masks-path={masks}")
    cfg = load_section("head", p)
    assert (cfg.n_shape, cfg.flame_path, cfg.masks_path) == (30, str(flame), str(masks))
    validate_all(p)


def test_dvc_set_param_bad_value_fails_naming_the_key(tmp_path):
    p = _dvc_override(tmp_path, "head.n-shape=abc")
    with pytest.raises(ParamsError, match=r"head\.n-shape: .*'abc'"):
        load_section("head", p)
    from dvc.exceptions import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):  # DVC itself refuses a key params.yaml does not have
        _dvc_override(tmp_path, "head.n-shap=3")


@pytest.mark.parametrize(
    "head, needle",
    [
        ({"n-shap": 3}, "head.n-shap: unknown key"),
        ({"n-expr": 0}, "head.n-expr"),
        ({"flame-path": "/nonexistent/flame2023.pkl"}, "head.flame-path: file not found"),
        ({"masks-path": "/x/FLAME_masks.pkl"}, "head.masks-path: only used with head.flame-path"),
    ],
)
def test_head_stage_fails_before_work(tmp_path, head, needle):
    """A bad params file stops the stage before it writes anything, naming section.key."""
    from typer.testing import CliRunner

    from stages.head import app

    params = write(tmp_path, {"head": head})
    out, plots, metrics = tmp_path / "out", tmp_path / "plots", tmp_path / "metrics"
    args = ["--out", str(out), "--plots", str(plots), "--params", str(params), "--metrics-dir", str(metrics)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, ParamsError) and needle in str(result.exception), result.exception
    assert not out.exists() and not plots.exists() and not metrics.exists()


def test_params_read_yaml12_exponent_floats_as_dvc_writes_them(tmp_path):
    """DVC's -S writes 5e-05 (no dot); PyYAML alone would read a string and validation would fail."""
    from fairsplat.config import read_params

    p = tmp_path / "params.yaml"
    p.write_text("a: {lr: 5e-05, big: 1E3, s: 1e, n: 3, v: 1.5}\n")
    assert read_params(p) == {"a": {"lr": 5e-05, "big": 1000.0, "s": "1e", "n": 3, "v": 1.5}}
