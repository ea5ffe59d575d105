"""fairsplat: fair, animatable Gaussian-splat head avatars."""
