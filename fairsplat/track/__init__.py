"""FLAME tracking: fit shape, expression, pose and camera to 68 2D landmarks.

Modules: ``landmarks`` (an exact landmark-only FLAME, the fast path every fit
runs through), ``camera`` (projection, rotations, the closed-form rigid
initialisation), ``priors`` (coefficient, pose-limit and temporal penalties),
``fit`` (the batched Adam fit, one optimisation for a whole batch),
``video`` (decode, detect, track a clip with a shared shape, jitter) and
``synth_eval`` (the SynthHeads accuracy report the ``track`` stage writes).
"""
