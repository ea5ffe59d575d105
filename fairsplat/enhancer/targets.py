"""pix2pix-turbo's LoRA targets (module-name suffixes, peft's matching), in a torch-free module.

Why its own file: the params section (``fairsplat.sections.train_enhancer``) and the library config both
need the lists, and importing the library config would pull torch into params validation.
"""

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out", "proj_in",
                "proj_out", "ff.net.0.proj", "ff.net.2")  # fmt: skip
"""pix2pix-turbo's UNet LoRA targets (module-name suffixes, peft's matching)."""
VAE_TARGETS = ("conv1", "conv2", "conv_in", "conv_shortcut", "conv", "conv_out", "to_q", "to_k", "to_v", "to_out.0")
"""pix2pix-turbo's VAE LoRA targets (its skip convs are trained fully here, so they are not listed)."""
