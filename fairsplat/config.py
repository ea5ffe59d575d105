"""Typed, validated params: one pydantic model per ``params.yaml`` section.

Why pydantic rather than hand-rolled checks: it gives every stage the same
strictness (unknown keys are errors, types are checked, not coerced from
floats) and error locations we can turn into ``section.key`` messages.

Keys are kebab-case in ``params.yaml`` (``head.flame-path``) so that
``dvc exp run -S head.flame-path=...`` reads like the CLI flags; in Python the
fields are snake_case. A stage reads its section with :func:`load_section`
*before* doing any work, so a typo fails in milliseconds, naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class Section(BaseModel):
    """Base for every params section: strict, frozen, kebab-case keys."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=_kebab,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )


class ParamsError(ValueError):
    """A params.yaml problem; the message names ``section.key``."""


S = TypeVar("S", bound=Section)

# Section registry: params section name -> model. Filled by the modules that
# own each section (one line each), see ``register``.
SECTIONS: dict[str, type[Section]] = {}


def register(name: str):
    """Class decorator: ``@register("head")`` makes ``head`` a known section."""

    def wrap(cls: type[S]) -> type[S]:
        SECTIONS[name] = cls
        return cls

    return wrap


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections")
    return data


def parse_section(name: str, raw: Any, model: type[S]) -> S:
    """Validate one section's mapping, raising ParamsError naming the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: section must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in (name, *e["loc"]))
            got = e.get("input")
            if not e["loc"]:  # a cross-field check: its message names the keys
                lines.append(f"{name}: {e['msg'].removeprefix('Value error, ')}")
            elif e["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(_kebab(f) for f in model.model_fields))
                lines.append(f"{key}: unknown key (allowed: {allowed})")
            else:
                lines.append(f"{key}: {e['msg']} (got {got!r})")
        raise ParamsError("invalid params:\n  " + "\n  ".join(lines)) from None


def load_section(name: str, path: str | Path = "params.yaml", model: type[S] | None = None) -> S:
    """Read and validate section ``name`` of ``path``."""
    model = model or SECTIONS.get(name)
    if model is None:
        raise ParamsError(f"{name}: no such params section (known: {', '.join(sorted(SECTIONS))})")
    return parse_section(name, read_params(path).get(name), model)


def validate_all(path: str | Path = "params.yaml") -> dict[str, Section]:
    """Validate every registered section (and refuse unknown sections)."""
    import fairsplat.sections  # noqa: F401  (fills SECTIONS)

    data = read_params(path)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"unknown params section(s): {', '.join(unknown)} (known: {', '.join(sorted(SECTIONS))})")
    return {name: parse_section(name, data.get(name), model) for name, model in SECTIONS.items()}
