"""Gaussians: binding to the head, PLY, and the rasteriser backends."""
