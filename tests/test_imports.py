"""Every stage's dvc.yaml deps cover the code it imports, and fairsplat has no import cycle."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairsplat.testing.imports import closure, cycles, imports_of, module_files, uncovered

ROOT = Path(__file__).resolve().parents[1]
FILES = module_files(ROOT)
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_its_imports(stage):
    mods = {m for m in closure(f"stages.{stage}", FILES) if m.startswith("fairsplat")}
    deps = [d for d in STAGES[stage]["deps"] if "${" not in d]
    missing = uncovered(mods, FILES, deps, ROOT)
    assert not missing, f"stage {stage}: dvc.yaml deps miss modules it imports: {missing}"


def test_no_import_cycle_in_fairsplat():
    assert cycles(FILES) == []


def test_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "fairsplat"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from fairsplat.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from fairsplat import a\n")  # function-local imports count
    (pkg / "c.py").write_text("from fairsplat import b\n")
    files = module_files(tmp_path, ("fairsplat",))
    assert imports_of("fairsplat.b", files) == {"fairsplat.a"}
    assert cycles(files) == [["fairsplat.a", "fairsplat.b"]]
    assert uncovered({"fairsplat.a", "fairsplat.c"}, files, ["fairsplat/a.py"], tmp_path) == ["fairsplat/c.py"]
