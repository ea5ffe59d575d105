"""Training loops on accelerate: the shared Accelerator set-up (``accel``); loops live beside their models' stages."""
