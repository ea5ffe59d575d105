"""Seed 003's UV-space generator (SpatialAvatar-0, issue 17): ops, network, losses."""
