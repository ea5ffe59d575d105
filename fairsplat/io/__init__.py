"""File formats in one place: atomic writes, metrics JSON, Parquet, PLY, checkpoints."""

from fairsplat.io.atomic import atomic_dir, atomic_path, write_bytes, write_json, write_text

__all__ = ["atomic_dir", "atomic_path", "write_bytes", "write_json", "write_text"]
