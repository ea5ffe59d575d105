"""One params model per DVC stage: ``params.yaml`` section = stage = ``stages/<name>.py``.

Importing this package registers every section in ``fairsplat.config.SECTIONS``.
"""

from fairsplat.sections import head, synth  # noqa: F401
from fairsplat.sections import curate, ingest  # noqa: F401  (stages ingest, curate)
from fairsplat.sections import degrade, parse, train_parser  # noqa: F401  (stages train_parser, parse, degrade)
from fairsplat.sections import track  # noqa: F401  (stage track)
