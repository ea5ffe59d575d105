"""Training, once for every trainer: ``accel`` (Accelerator from params), ``loop`` (the skeleton: a task
supplies build / train_step / evaluate), ``schedule`` (warm-up + cosine/linear), ``optim`` (AdamW from params).

Checkpoints and resume state are file formats, so they live in ``fairsplat.io.checkpoint``.
"""
