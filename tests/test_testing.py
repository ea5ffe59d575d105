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


def test_tiny_pipeline_outputs_are_read_only_copies_writable_subsets_filtered(tiny_pipeline, tmp_path):
    import stat

    import pyarrow.parquet as pq

    out = tiny_pipeline.out("curate")
    for p in (out, out / "manifest.parquet", *tiny_pipeline.stages["curate"].metrics):
        assert not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), f"{p} is writable"
    copy = tiny_pipeline.copy("curate", tmp_path / "curated")
    (copy / "crops" / "extra.png").write_bytes(b"")  # a copy takes new files and overwrites
    (copy / "manifest.parquet").write_bytes(b"")
    assert (out / "manifest.parquet").stat().st_size > 0 and not (out / "crops" / "extra.png").exists()
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    cut = tiny_pipeline.subset("curate", tmp_path / "cut", lambda r: r["split"] == "train")
    kept = pq.read_table(cut / "manifest.parquet").to_pylist()
    assert kept == [r for r in rows if r["split"] == "train"] and 0 < len(kept) < len(rows)
    assert (cut / "crops").resolve() == out / "crops"
