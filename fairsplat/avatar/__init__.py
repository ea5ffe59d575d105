"""Animatable Gaussian heads: ``Avatar`` (canonical attributes + FLAME binding), ``AvatarBinding`` (LAM points
or SpatialAvatar UV grid), ``render_batch`` (B avatars, one camera each)."""
