"""Test scaffolding, importable by tests/ and bench/ (never by library code or stages).

- ``pipeline``: the tiny pipeline (the real dvc.yaml on micro params; ``MICRO``), the
  session fixture ``tiny_pipeline`` of tests/conftest.py
- ``fakes``: a synthetic face-like crop with CelebAMask-HQ labels, a fake curate output
  (``fake_curated``) and the bad inputs every stage must record (``add_bad_inputs``)
- ``testcard``: a painted face with exact skin colour, landmarks and labels
- ``badfiles``: the zoo of awkward input files, each with the outcome curation must give
- ``badinputs``: the fault sweep's bad-input kinds (issue 18), written in any user-file format
- ``toy_head``: a tiny FLAME-format head; ``track_problems``: landmark problems with known answers
- ``imports``: the static import graph (dvc.yaml deps cover each stage's imports; no cycles)
- ``faults``: kill a stage of a tiny-pipeline copy with SIGKILL, ``dvc repro`` again, compare with the
  uninterrupted outputs (tests/test_fault_sweep.py, bench/fault_sweep.py)
"""
