"""The splat-render enhancer's stages (``train_enhancer``, ``enhance``): data, losses, training task, held-out
scoring, LoRA on SD-Turbo, real renders. The model itself is ``fairsplat.models.enhancer``."""
