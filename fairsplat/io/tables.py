"""Parquet tables: one writer with a schema check, one reader.

Why one writer: five stages each had their own ``write_table``; one checked
for unknown columns, one compressed with zstd, none checked for *missing*
columns (``pa.Table.from_pylist`` silently fills a forgotten key with null, so
a typo in a row dict became a column of nulls that only a later stage noticed).
This one keeps the union of their guarantees:

* schema check: every row must carry exactly the schema's columns; a missing
  or unexpected column raises a ValueError that names it and the path;
* atomic: written to a temporary sibling and renamed (``io.atomic``), so a
  crash leaves the previous file, never half a table;
* zstd: 10-20 % smaller than Parquet's default snappy on our manifests
  (curated: 295 -> 260 KB); the bytes differ from a snappy file, the values
  and types do not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fairsplat.io.atomic import atomic_path

COMPRESSION = "zstd"
"""Parquet codec for every table the project writes (see the module docstring)."""


def check_columns(names: Iterable[str], schema: pa.Schema, path: str | Path) -> None:
    """Raise a ValueError naming the columns of ``names`` missing from / not in ``schema``."""
    want, have = set(schema.names), set(names)
    if want == have:
        return
    problems = [f"{what} columns {sorted(cols)}" for what, cols in (("missing", want - have), ("unexpected", have - want)) if cols]
    raise ValueError(f"{path}: {'; '.join(problems)} for its schema")


def as_table(
    data: Sequence[Mapping[str, Any]] | pa.Table,
    schema: pa.Schema,
    path: str | Path = "<table>",
    drop: Collection[str] = (),
) -> pa.Table:
    """Rows (dicts keyed by column) or a Table -> a Table of exactly ``schema`` (checked, cast).

    ``drop``: columns the caller knowingly keeps in memory but does not store
    (say ``subject_id`` carried for a bootstrap); they are removed before the
    check, so any *other* stray key still raises.
    """
    if isinstance(data, pa.Table):
        data = data.drop_columns([c for c in drop if c in data.column_names])
        check_columns(data.column_names, schema, path)
        return data.select(schema.names).cast(schema)
    want = set(schema.names)
    rows = [{k: v for k, v in r.items() if k not in drop} for r in data] if drop else list(data)
    for row in rows:  # every row: a key forgotten in one branch of a row builder is still caught
        if row.keys() != want:
            check_columns(row.keys(), schema, path)
    return pa.Table.from_pylist(rows, schema=schema)


def write_table(
    data: Sequence[Mapping[str, Any]] | pa.Table,
    schema: pa.Schema,
    path: str | Path,
    *,
    drop: Collection[str] = (),
) -> int:
    """Write ``data`` as Parquet at ``path`` (schema-checked, atomic, zstd); returns the row count."""
    table = as_table(data, schema, path, drop)
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression=COMPRESSION)
    return table.num_rows


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """A Parquet file as a list of row dicts (all columns, or ``columns`` in that order)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such table")
    return pq.read_table(path, columns=list(columns) if columns is not None else None).to_pylist()
