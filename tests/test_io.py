"""fairsplat.io: atomic writes, metrics files, Parquet tables, PNG images and plots."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairsplat.io import atomic_dir, atomic_path, write_json
from fairsplat.io.images import load_grey, load_labels, load_rgb, save_png
from fairsplat.io.metrics import write_metrics
from fairsplat.io.plots import HEADER_PX, LABEL_PX, bar_chart, chunk, grid
from fairsplat.io.tables import read_table, write_table


def test_atomic_path_leaves_old_file_on_crash(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_dir_swaps_whole_directory(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as d:
        (d / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as d:
            (d / "y").write_text("2")
            raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["x"]
    with atomic_dir(out) as d:
        (d / "z").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


_KILLED_WRITER = """
import os, signal, sys
from fairsplat.io import atomic_dir, atomic_path
with atomic_dir(sys.argv[1] + "/out") as d, atomic_path(sys.argv[1] + "/m.json") as f:
    (d / "half").write_text("x")
    f.write_text("{")
    os.kill(os.getpid(), signal.SIGKILL)  # no finally runs, as under kill -9
"""


def test_temporaries_of_a_killed_writer_are_swept_by_the_next_write(tmp_path):
    """SIGKILL leaves the temporaries behind; the next atomic write into that directory removes them,
    and never a live writer's (this process's own, still open) or a non-temporary dot file."""
    import subprocess
    import sys

    from fairsplat.io.atomic import TEMP, sweep

    run = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == -9, run.stderr
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(TEMP.match(n) for n in left), left  # the dir's and the file's, nothing else
    (tmp_path / ".keep").write_text("not ours")
    with atomic_path(tmp_path / "other.json") as live:
        live.write_text("{}")
        assert sweep(tmp_path, force=True) == [] and live.exists()  # ours: alive
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep", "other.json"]


def test_atomic_outputs_get_plain_permissions(tmp_path):
    """Temp files are 0600 and temp dirs 0700; outputs must not stay that private."""
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_metrics_contract(tmp_path):
    path = write_metrics("s", {"n": np.int64(3), "x": np.float32(0.5), "per_fitzpatrick": {"II": {"n": 1}, "I": {"n": 2}}, "lpips": None}, root=tmp_path)
    data = json.loads(path.read_text())
    assert data["n"] == 3 and data["x"] == 0.5 and data["lpips"] is None
    assert list(data["per_fitzpatrick"]) == ["I", "II"]
    with pytest.raises(ValueError, match="nan"):
        write_metrics("s", {"x": float("nan")}, root=tmp_path)
    with pytest.raises(ValueError, match="per_fitzpatrick"):
        write_metrics("s", {"per_fitzpatrick": {"VII": {}}}, root=tmp_path)


# --- tables ---------------------------------------------------------------------------------------

SCHEMA = pa.schema([("image_id", pa.string()), ("n", pa.int32()), ("ita", pa.float64())])
ROWS = [{"image_id": "a", "n": 1, "ita": 12.5}, {"image_id": "b", "n": 2, "ita": None}]


def test_write_table_round_trip_is_zstd_and_typed(tmp_path):
    path = tmp_path / "t.parquet"
    assert write_table(ROWS, SCHEMA, path) == 2
    assert read_table(path) == ROWS
    assert pq.read_schema(path).remove_metadata().equals(SCHEMA)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert read_table(path, columns=["n"]) == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([{"image_id": "a", "n": 1}], r"missing columns \['ita'\]"),
        ([{**ROWS[0], "nn": 3}], r"unexpected columns \['nn'\]"),
        ([ROWS[0], {"image_id": "b", "n": 2, "itta": 1.0}], r"missing columns \['ita'\]; unexpected columns \['itta'\]"),
    ],
)
def test_write_table_names_missing_and_unexpected_columns(tmp_path, rows, named):
    """A row builder's typo must fail loudly, naming the column and the file, not become a null column."""
    with pytest.raises(ValueError, match=named) as err:
        write_table(rows, SCHEMA, tmp_path / "t.parquet")
    assert "t.parquet" in str(err.value)
    assert not (tmp_path / "t.parquet").exists()


def test_write_table_drop_removes_only_the_named_keys(tmp_path):
    rows = [{**r, "subject_id": "s"} for r in ROWS]
    write_table(rows, SCHEMA, tmp_path / "t.parquet", drop=("subject_id",))
    assert read_table(tmp_path / "t.parquet") == ROWS
    with pytest.raises(ValueError, match="subject_id"):
        write_table(rows, SCHEMA, tmp_path / "t.parquet")


def test_write_table_casts_an_arrow_table_to_the_schema(tmp_path):
    """A Table (inferred int64, other column order) is checked and cast, so the file has the schema's types."""
    table = pa.table({"ita": [1.0], "n": [7], "image_id": ["x"]})
    write_table(table, SCHEMA, tmp_path / "t.parquet")
    assert pq.read_schema(tmp_path / "t.parquet").remove_metadata().equals(SCHEMA)
    with pytest.raises(ValueError, match=r"missing columns \['ita'\]"):
        write_table(table.drop_columns(["ita"]), SCHEMA, tmp_path / "t.parquet")


def test_write_table_failure_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    write_table(ROWS, SCHEMA, path)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):  # a bad value: fails before any write
        write_table([{"image_id": "c", "n": "not a number", "ita": 0.0}], SCHEMA, path)

    def crash(table, where, **kw):  # a crash half-way through writing
        open(where, "wb").write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr("fairsplat.io.tables.pq.write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        write_table(ROWS[:1], SCHEMA, path)
    assert read_table(path) == ROWS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


# --- images ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7, 3), (5, 7)])
def test_save_png_load_round_trip_is_lossless(tmp_path, shape):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    save_png(tmp_path / "a.png", arr)
    back = load_rgb(tmp_path / "a.png")
    assert back.shape == (5, 7, 3) and back.dtype == np.uint8 and back.flags.writeable
    assert np.array_equal(back, arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2))
    if arr.ndim == 2:
        assert np.array_equal(load_grey(tmp_path / "a.png"), arr)


def test_save_png_is_atomic_and_non_atomic_writes_the_same_bytes(tmp_path):
    arr = np.zeros((4, 4), np.uint8)
    save_png(tmp_path / "a.png", arr)
    save_png(tmp_path / "sub" / "b.png", arr, atomic=False)  # makes its directory too
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "sub" / "b.png").read_bytes()
    with pytest.raises(AssertionError):
        save_png(tmp_path / "a.png", arr.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "sub"]


def test_load_labels_checks_channels_and_ids(tmp_path):
    lab = np.array([[0, 1], [18, 2]], np.uint8)
    save_png(tmp_path / "l.png", lab)
    assert np.array_equal(load_labels(tmp_path / "l.png"), lab)
    save_png(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="mode RGB"):
        load_labels(tmp_path / "rgb.png")
    save_png(tmp_path / "big.png", np.full((2, 2), 40, np.uint8))
    with pytest.raises(ValueError, match="ids outside"):
        load_labels(tmp_path / "big.png")


# --- plots ----------------------------------------------------------------------------------------


def test_grid_shape_with_headers_row_labels_and_ragged_rows():
    rows = [[np.zeros((8, 8, 3), np.uint8)] * 3, [np.ones((16, 16), np.float32)]]  # grey float panel, short row
    out = grid(rows, headers=("a", "b", "c"), row_labels=("I", "II"), side=32)
    assert out.shape == (HEADER_PX + 2 * 32, LABEL_PX + 3 * 32, 3) and out.dtype == np.uint8
    assert (out[HEADER_PX + 32 :, LABEL_PX + 32 :] == 255).all()  # the short row is padded white
    assert (out[HEADER_PX + 32 + 4, LABEL_PX + 4] == 255).all()  # float 1.0 -> 255
    plain = grid(chunk([np.zeros((4, 6, 3), np.uint8)] * 5, 2), side=None, background=(128, 128, 128))
    assert plain.shape == (3 * 4, 2 * 6, 3) and (plain[8:, 6:] == 128).all()
    with pytest.raises(AssertionError, match="differ in size"):
        grid([[np.zeros((4, 4, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)]], side=None)


BASE = {"I": {"psnr": 23.1, "psnr_ci": [22.4, 23.9]}, "II": {"psnr": 22.0, "psnr_ci": None},
        "III": {"psnr": None, "psnr_ci": None}, "V": {"psnr": 20.5}}  # fmt: skip  IV absent, V without a CI key
LORA = {t: {"psnr": 24.0, "psnr_ci": [23.0, 25.0]} for t in ("I", "II", "III", "IV", "V", "VI")}


def test_bar_chart_writes_a_deterministic_png_of_the_asked_size(tmp_path):
    from PIL import Image

    bar_chart({"base": BASE, "LoRA": LORA}, "psnr", tmp_path / "a.png", size=(400, 300), dpi=100)
    bar_chart({"base": BASE, "LoRA": LORA}, "psnr", tmp_path / "b.png", size=(400, 300), dpi=100)
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (400, 300) and im.format == "PNG"
        assert not any(k in im.info for k in ("Software", "Creation Time", "date:create"))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary left


def test_bar_chart_draws_gaps_not_zeros(tmp_path):
    """None, a missing type and a missing CI give no bar / no error bar; a real 0.0 still draws one."""
    from fairsplat.io.plots import _series

    values, ci = _series(BASE, "psnr", ("I", "II", "III", "IV", "V", "VI"))
    assert values[0] == 23.1 and np.isnan(values[2:4]).all() and np.isnan(values[5])
    assert np.isfinite(ci[0]).all() and np.isnan(ci[1:]).all()
    zero = {"I": {"psnr": 0.0}}
    bar_chart({"base": zero}, "psnr", tmp_path / "zero.png")
    bar_chart({"base": {}}, "psnr", tmp_path / "empty.png")
    assert (tmp_path / "zero.png").read_bytes() != (tmp_path / "empty.png").read_bytes()
