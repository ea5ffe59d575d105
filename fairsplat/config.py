"""Typed, validated params: one pydantic model per ``params.yaml`` section.

Why pydantic rather than hand-rolled checks: it gives every stage the same
strictness (unknown keys are errors, types are checked, not coerced from
floats) and error locations we can turn into ``section.key`` messages.

Keys are kebab-case in ``params.yaml`` (``head.flame-path``) so that
``dvc exp run -S head.flame-path=...`` reads like the CLI flags; in Python the
fields are snake_case. A stage reads its own section with
``<Section>.load(params)`` *before* doing any work, so a typo fails in
milliseconds, naming the key.

One way across the boundary: each section model builds the library's own
config dataclass (``to_config``), and nothing in the library imports
``fairsplat.sections``; cross-field checks live in the section models'
validators. This module imports no section, so the registry
(``fairsplat.sections.SECTIONS``, a plain dict) and the sections can import it
without a cycle.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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

    section: ClassVar[str] = ""
    """The params.yaml section (= DVC stage = stages/<name>.py) this model validates."""

    @classmethod
    def load(cls: type[S], path: str | Path = "params.yaml") -> S:
        """Read and validate this section of ``path`` (raises ParamsError naming ``section.key``)."""
        return parse_section(cls.section, read_params(path).get(cls.section), cls)

    def to_config(self, cls: type[T], **extra: Any) -> T:
        """The library's dataclass ``cls`` from the same-named fields (``extra`` fills or overrides).

        Lists become tuples where the dataclass default is a tuple, so frozen
        library configs stay hashable. A dataclass field the section lacks and
        ``extra`` does not give is a programming error, raised here.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in extra:
                values[f.name] = extra[f.name]
            elif f.name in type(self).model_fields:
                v = getattr(self, f.name)
                values[f.name] = tuple(v) if isinstance(v, list) else v
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{f.name}: not a key of section {self.section!r}; pass it")
        return cls(**values)


class ParamsError(ValueError):
    """A params.yaml problem; the message names ``section.key``."""


S = TypeVar("S", bound=Section)
T = TypeVar("T")


class _Yaml12Floats(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``5e-05`` (no dot) is a string; DVC writes ``-S`` values that way
    (ruamel, YAML 1.2), so ``dvc exp run -S train_enhancer.lr=5e-5`` would fail validation without this."""


_Yaml12Floats.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that also reads YAML 1.2 exponent floats (``1e-4``) as floats."""
    return yaml.load(text, Loader=_Yaml12Floats)


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    data = load_yaml(path.read_text()) or {}
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


def bare_no(v: object) -> object:
    """A bare ``no`` is YAML 1.1's false, and ``dvc exp run -S x.mixed-precision=no`` writes it bare."""
    return "no" if v is False else v
