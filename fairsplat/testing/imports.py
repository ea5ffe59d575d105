"""Static import graph of the project, for two checks DVC and Python cannot make themselves.

- **deps**: a stage's ``dvc.yaml`` deps must cover every ``fairsplat`` module its
  command can import; a module left out is a silent reproducibility bug (DVC
  would not re-run the stage when that code changes).
- **cycles**: no two modules of ``fairsplat`` import each other, directly or
  through others.

Static (``ast``) rather than ``sys.modules`` after an import: function-local
imports count, because they run on some path of the stage, and nothing is
executed. ``from pkg import sub`` counts as importing ``pkg.sub`` only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def module_files(root: Path, packages: Iterable[str] = ("fairsplat", "stages")) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root/<package>``."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for p in sorted((root / pkg).rglob("*.py")):
            parts = p.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = p
    return out


def _absolute(module: str | None, level: int, current: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, files: dict[str, Path], top_level_only: bool = False) -> set[str]:
    """Project modules that ``name`` imports (anywhere in the file, or at module level only)."""
    tree = ast.parse(files[name].read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    is_package = files[name].name == "__init__.py"
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node.module, node.level, name, is_package)
            found.update(f"{mod}.{a.name}" if f"{mod}.{a.name}" in files else mod for a in node.names)
    out = set()
    for mod in found:
        while mod and mod not in files:  # `import a.b.c` of a function/attribute: its module
            mod = mod.rpartition(".")[0]
        if mod and mod != name:
            out.add(mod)
    return out


def closure(start: str, files: dict[str, Path]) -> set[str]:
    """Every project module reachable from ``start``, plus the packages they sit in (their __init__ runs)."""
    seen, todo = set(), [start]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        parents = [".".join(parts[:i]) for i in range(1, len(parts))]
        todo.extend(p for p in parents if p in files)
        todo.extend(imports_of(mod, files))
    return seen


def cycles(files: dict[str, Path], prefix: str = "fairsplat") -> list[list[str]]:
    """Strongly connected groups (> 1 module) of the import graph under ``prefix`` (Tarjan)."""
    graph = {m: sorted(d for d in imports_of(m, files) if d.startswith(prefix)) for m in files if m.startswith(prefix)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth = longest import chain (tens), fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _docstring_only(path: Path) -> bool:
    """A package ``__init__`` holding nothing but a docstring cannot change what a stage computes."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def uncovered(modules: Iterable[str], files: dict[str, Path], deps: Iterable[str], root: Path) -> list[str]:
    """Module files not covered by any dep (a dep covers itself and everything below a directory).

    Docstring-only package ``__init__`` files are exempt; one that gains code is reported.
    """
    dep_paths = [Path(d) for d in deps]
    missing = []
    for mod in sorted(modules):
        if files[mod].name == "__init__.py" and _docstring_only(files[mod]):
            continue
        rel = files[mod].relative_to(root)
        if not any(rel == d or d in rel.parents for d in dep_paths):
            missing.append(str(rel))
    return missing
