"""SynthHeads: the embedded, procedurally rendered dataset with exact ground truth."""
