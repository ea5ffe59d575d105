"""One params model per DVC stage: ``params.yaml`` section = stage = ``stages/<name>.py``.

Importing this package registers every section in ``fairsplat.config.SECTIONS``.
"""

from fairsplat.sections import head, synth  # noqa: F401
from fairsplat.sections import curate, ingest  # noqa: F401  (stages ingest, curate)
