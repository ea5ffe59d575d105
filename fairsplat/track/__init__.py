"""FLAME tracking: fit shape, expression, pose and camera to 68 2D landmarks.

Fitting: ``landmarks`` (an exact landmark-only FLAME, the fast path every fit
runs through), ``camera`` (projection, rotations, the closed-form rigid
initialisation), ``priors`` (coefficient and joint-limit weights), ``solver``
(batched Levenberg-Marquardt, one block per subject), ``fit`` (the fitter:
rigid start, then everything, for a whole batch) and ``photometric``
(optional refinement through the Gaussian rasteriser).

Running it: ``sources`` (SynthHeads, curated crops, photos as ``Items``),
``video`` (decode, detect, clips, jitter), ``run`` (batching by subject,
interpolation of failed clip frames, rejects), ``evaluate`` (NME, SynthHeads
parameter errors, per-Fitzpatrick tables), ``tables`` (the Parquet outputs),
``plots`` and ``pipeline`` (the ``track`` stage's work). Problems with known
answers and a tiny FLAME-format head, for tests and benchmarks, are in
``fairsplat.testing`` (``track_problems``, ``toy_head``).
"""
