"""Params section ``workers``: where the data stages run their shards (fairsplat/parallel).

Shared by every data stage that maps over shards (synth, curate, degrade);
not a stage itself. Outputs do not depend on it (tests/test_parallel.py checks
byte identity across engines), so dvc.yaml declares it as no stage's param:
switching to a cluster re-runs nothing by itself (README "Beyond one machine").
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from fairsplat.config import Section


class WorkersParams(Section):
    section: ClassVar[str] = "workers"

    engine: Literal["local", "dask"] = "local"
    """``local``: a process pool on this machine, as the stages always ran (no cluster to start: the
    default machine has 2 cores). ``dask``: Dask distributed; its loopback ``LocalCluster`` unless
    ``address`` names a running scheduler. The keys of fairsplat.parallel.engines.ENGINES."""

    address: str | None = None
    """A running Dask scheduler (``tcp://host:8786``); null = start a local cluster. Its workers must
    see this checkout and the stage's paths (a shared filesystem): they write the stage's files."""

    retries: int = Field(2, ge=0, le=10)
    """Extra attempts per shard after it raises or its worker dies, before its items become rejects
    (or, in synth, which has no rejects, the stage fails naming the shard). 2: a killed or preempted
    worker is survived twice over; a shard that fails three times is broken, not unlucky."""

    @model_validator(mode="after")
    def _check(self) -> WorkersParams:
        if self.address is not None and self.engine == "local":
            raise ValueError("workers.address: the local process pool has no address; set workers.engine: dask")
        return self

    def workers_config(self):
        """The library's WorkersConfig (fairsplat/parallel)."""
        from fairsplat.parallel.core import WorkersConfig

        return self.to_config(WorkersConfig)
