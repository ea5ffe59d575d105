"""One params model per DVC stage: ``params.yaml`` section = stage = ``stages/<name>.py``.

A stage imports only its own model (``from fairsplat.sections.curate import
CurateParams``) and calls ``CurateParams.load(params)``. The registry of all
of them, ``SECTIONS`` (a plain dict), is in ``registry.py`` rather than here:
importing one section must not import the other seven, or every stage's DVC
deps would have to list every section (and a doc change in one section would
re-run the whole pipeline).
"""
