"""fairsplat.testing is test scaffolding: tests and bench import it, the library and the stages never do."""

from __future__ import annotations

from pathlib import Path

from fairsplat.testing.imports import imports_of, module_files

ROOT = Path(__file__).resolve().parents[1]


def test_library_and_stages_never_import_the_test_scaffolding():
    files = module_files(ROOT)
    users = {m: sorted(d for d in imports_of(m, files) if d.startswith("fairsplat.testing"))
             for m in files if not m.startswith("fairsplat.testing")}  # fmt: skip
    assert {m: d for m, d in users.items() if d} == {}
    assert imports_of("fairsplat.testing.fakes", files), "the check sees imports at all"
