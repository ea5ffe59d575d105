"""Reenactment runs and their scoring: ``reenact`` (drive an avatar with tracked motion); the evaluate stage's tables."""
