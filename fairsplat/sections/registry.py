"""``SECTIONS``: every params section by name, a plain dict (no decorators, no import side effects).

For whole-file checks (``fairsplat validate``, presets, tests parametrised
over every section); stages import their own section module only.
"""

from __future__ import annotations

from pathlib import Path

from fairsplat.config import ParamsError, Section, parse_section, read_params
from fairsplat.sections.curate import CurateParams
from fairsplat.sections.degrade import DegradeSection
from fairsplat.sections.enhance import EnhanceParams
from fairsplat.sections.evaluate import EvaluateParams
from fairsplat.sections.head import HeadParams
from fairsplat.sections.ingest import IngestParams
from fairsplat.sections.lora import LoraParams
from fairsplat.sections.parse import ParseParams
from fairsplat.sections.refine import RefineParams
from fairsplat.sections.report import ReportParams
from fairsplat.sections.synth import SynthParams
from fairsplat.sections.track import TrackParams
from fairsplat.sections.train_enhancer import TrainEnhancerParams
from fairsplat.sections.train_ff import TrainFFParams
from fairsplat.sections.train_parser import TrainParserParams
from fairsplat.sections.workers import WorkersParams

SECTIONS: dict[str, type[Section]] = {
    "head": HeadParams,
    "synth": SynthParams,
    "ingest": IngestParams,
    "curate": CurateParams,
    "train_parser": TrainParserParams,
    "parse": ParseParams,
    "degrade": DegradeSection,
    "track": TrackParams,
    "train_ff": TrainFFParams,
    "lora": LoraParams,
    "refine": RefineParams,
    "evaluate": EvaluateParams,
    "report": ReportParams,
    "train_enhancer": TrainEnhancerParams,
    "enhance": EnhanceParams,
    "workers": WorkersParams,  # not a stage: shared by the data stages (fairsplat/parallel)
}


def load_section(name: str, path: str | Path = "params.yaml") -> Section:
    """Read and validate section ``name`` of ``path`` (by name, for tools and tests)."""
    if name not in SECTIONS:
        raise ParamsError(f"{name}: no such params section (known: {', '.join(sorted(SECTIONS))})")
    return SECTIONS[name].load(path)


def validate_all(path: str | Path = "params.yaml") -> dict[str, Section]:
    """Validate every section of ``path`` (and refuse unknown sections)."""
    data = read_params(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"unknown params section(s): {', '.join(unknown)} (known: {', '.join(sorted(SECTIONS))})")
    return {name: parse_section(name, data.get(name), model) for name, model in SECTIONS.items()}
