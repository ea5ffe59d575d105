"""File formats in one place, so every stage reads and writes them the same way.

Modules:

- ``atomic``: temporary-then-rename writes of files and directories (a crash
  leaves the old output, never half a new one); everything below uses them.
- ``tables``: Parquet, ``write_table`` (schema-checked, atomic, zstd) and ``read_table``.
- ``images``: files the pipeline wrote: ``load_rgb``, ``load_grey``,
  ``load_labels`` (label maps, checked) and ``save_png``.
- ``photos``: untrusted photos: ``load_photo`` returns RGB or a one-word
  reason (EXIF, CMYK, 16-bit, truncation, bombs).
- ``plots``: image ``grid`` with headers and row labels, per-Fitzpatrick
  ``bar_chart`` with error bars (deterministic PNG).
- ``metrics``: ``metrics/<stage>.json``, flat numbers plus ``per_fitzpatrick``.
- ``checkpoint``: safetensors weights + JSON config; resumable train state.
- ``safe_pickle``: an allow-list unpickler for files from outside.

Not here: the 3DGS PLY format lives with the Gaussians it stores
(``fairsplat.splat.ply``), since io must not import model code.
"""

from fairsplat.io.atomic import atomic_dir, atomic_path, write_bytes, write_json, write_text

__all__ = ["atomic_dir", "atomic_path", "write_bytes", "write_json", "write_text"]
