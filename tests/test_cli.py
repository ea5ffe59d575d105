"""The ``fairsplat`` command: params validation and presets as ``dvc exp run -S`` flags."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fairsplat.cli import app, preset_overrides
from fairsplat.config import ParamsError, read_params
from fairsplat.sections.registry import validate_all

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.stem for p in (ROOT / "params").glob("*.yaml"))


def test_validate_names_the_bad_key(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(params))
    assert CliRunner().invoke(app, ["validate", "--params", str(ok)]).exit_code == 0
    params["synth"]["size"] = "big"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(params))
    result = CliRunner().invoke(app, ["validate", "--params", str(bad)])
    assert result.exit_code == 2 and "synth.size" in result.output


def _deep_merge(base, over):
    """What DVC's -S flags do to a nested dict: only the given leaves change."""
    if not isinstance(over, dict) or not isinstance(base, dict):
        return over
    return {**base, **{k: _deep_merge(base.get(k), v) for k, v in over.items()}}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_flags_round_trip_through_dvc(tmp_path, name):
    """The printed flags, applied by DVC's own -S parser, give valid params holding the preset."""
    from dvc.utils.hydra import apply_overrides

    flags = preset_overrides(name, ROOT / "params.yaml", ROOT / "params")
    assert flags, f"preset {name} is empty"
    p = tmp_path / "params.yaml"
    p.write_text((ROOT / "params.yaml").read_text())
    apply_overrides(str(p), flags)
    validate_all(p)
    merged = read_params(p)  # YAML 1.2 floats: DVC writes 5e-05 without a dot
    params_before = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, over in yaml.safe_load((ROOT / "params" / f"{name}.yaml").read_text()).items():
        for key, value in over.items():
            want = _deep_merge(params_before[section][key], value)
            assert merged[section][key] == want, f"{section}.{key}"


def test_preset_refuses_unknown_sections_and_bad_values(tmp_path):
    presets = tmp_path / "params"
    presets.mkdir()
    (presets / "typo.yaml").write_text("synthh: {size: 512}\n")
    (presets / "bad.yaml").write_text("synth: {size: -1}\n")
    with pytest.raises(ParamsError, match="synthh"):
        preset_overrides("typo", ROOT / "params.yaml", presets)
    with pytest.raises(ParamsError, match="synth.size"):
        preset_overrides("bad", ROOT / "params.yaml", presets)
    with pytest.raises(ParamsError, match="known: bad, typo"):
        preset_overrides("missing", ROOT / "params.yaml", presets)
