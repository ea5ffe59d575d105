"""Seed 000's fairness adapter: LoRA on the generator's decoder through peft (``adapters``), the SoulSplats file
layout (``soulsplats``), training beside a full fine-tune and scoring against the balanced reference (``run``,
``report``, ``save``)."""
