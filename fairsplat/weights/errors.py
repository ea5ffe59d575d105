"""Errors of the weights package; every message names the file and what was expected."""

from __future__ import annotations

from fairsplat.io.safe_pickle import UnsafePickleError


class WeightsError(RuntimeError):
    """Base of every weights error."""


class WeightsMissing(WeightsError):
    """A weight file is absent (or fails its sha256) in the cache; the message gives the fetch command.

    Callers that can run without the file (metrics reported absent) catch this one.
    """


class FetchError(WeightsError):
    """Download, verification or extraction of an archive failed."""


class WeightsCorrupt(WeightsError, ValueError):
    """A weight file passed its sha256 but its content is not what the loader expects."""


class UnsafeWeightsPickle(WeightsCorrupt, UnsafePickleError):
    """A weights pickle names a global outside the numpy allow-list; nothing from it was run."""
