"""The code a job runs, computed from the code itself: no list is kept by hand.

A job's code is the static import closure of its stage's entry module within ``stages/``
(``import`` and ``from … import`` statements anywhere in a module, function bodies included,
``if TYPE_CHECKING:`` blocks left out since they never run), plus the modules it imports *by
name* at run time, which a registry makes explicit: the builder module of every dataset its
job file names: a dataset's builder, an architecture's family, an attack's kind
(:func:`runtime_modules`). Importing ``stages.a.b`` runs
``stages/__init__.py`` and ``stages/a/__init__.py`` too, so they belong to the closure.

The digest is taken over each module's *parsed* code (:func:`ast.dump` without positions, with
docstrings removed): a comment, a docstring or a reformat reruns nothing, while any change that
Python would execute differently changes the digest. ``tests/test_code_deps.py`` runs every
stage of the micro-DAG with an import recorder and checks that each ``stages.*`` module a job
imported is in its closure.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "stages"


@dataclass(frozen=True)
class Module:
    """One module of ``stages/``: where it is, what it imports within ``stages/``, and the
    digest of its parsed code."""

    name: str
    path: str  # relative to the project root, posix
    imports: frozenset[str]
    digest: str


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Every statement of ``body`` and of the blocks nested in it (function and class bodies,
    branches, loops, ``try`` handlers, ``match`` cases), expressions not entered: imports and
    docstrings are statements, so this finds them all without visiting every node."""
    for stmt in body:
        yield stmt
        for field in ("body", "orelse", "finalbody"):
            yield from _statements(getattr(stmt, field, None) or [])
        for handler in getattr(stmt, "handlers", None) or []:
            yield from _statements(handler.body)
        for case in getattr(stmt, "cases", None) or []:
            yield from _statements(case.body)


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in [tree, *_statements(tree.body)]:
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(body: list[ast.stmt]) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (``if TYPE_CHECKING:`` bodies skipped)."""
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            yield stmt
        elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _import_nodes(stmt.orelse)
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _import_nodes(getattr(stmt, field, None) or [])
        for handler in getattr(stmt, "handlers", None) or []:
            yield from _import_nodes(handler.body)
        for case in getattr(stmt, "cases", None) or []:
            yield from _import_nodes(case.body)


class CodeIndex:
    """The modules of ``stages/`` under ``root``, parsed once each, on demand."""

    def __init__(self, root: str | Path = "."):
        self.root = Path(root)

    def path_of(self, name: str) -> Path | None:
        """The file of module ``name`` (a package's ``__init__.py``), or None if it is none."""
        parts = name.split(".")
        base = self.root.joinpath(*parts)
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
        file = base.with_suffix(".py")
        return file if file.is_file() else None

    @functools.cache  # noqa: B019 - one index per plan, its modules parsed once
    def module(self, name: str) -> Module:
        path = self.path_of(name)
        if path is None:
            raise KeyError(f"{name}: no such module under {self.root / PACKAGE}")
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
        is_package = path.name == "__init__.py"
        imports: set[str] = set()
        for node in _import_nodes(tree.body):
            imports.update(self._resolve(node, name, is_package))
        imports.discard(name)
        dumped = ast.dump(_strip_docstrings(tree), include_attributes=False)
        return Module(
            name=name,
            path=path.relative_to(self.root).as_posix(),
            imports=frozenset(imports),
            digest=hashlib.sha256(dumped.encode()).hexdigest(),
        )

    def _resolve(self, node: ast.Import | ast.ImportFrom, current: str, is_package: bool) -> set[str]:
        """The ``stages`` modules an import statement runs: the named module, its parent
        packages, and for ``from pkg import name`` the submodule ``pkg.name`` where one exists."""
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            found: set[str] = set()
            for target in targets:
                found |= self._with_parents(target)
            return found
        if node.level:
            package = current.split(".") if is_package else current.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        found = self._with_parents(base)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if alias.name != "*" and self.path_of(sub) is not None and sub.startswith(PACKAGE + "."):
                found |= self._with_parents(sub)
        return found

    def _with_parents(self, name: str) -> set[str]:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            return set()
        parts = name.split(".")
        found = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        return {m for m in found if self.path_of(m) is not None}

    def closure(self, entries: Iterable[str]) -> tuple[str, ...]:
        """Every module that importing ``entries`` can run, sorted."""
        seen: set[str] = set()
        todo = [m for entry in entries for m in self._with_parents(entry)]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.module(name).imports - seen)
        return tuple(sorted(seen))

    def digest(self, modules: Iterable[str]) -> str:
        """sha256 over the modules' paths and parsed code, in name order."""
        h = hashlib.sha256()
        for name in sorted(modules):
            module = self.module(name)
            h.update(f"{module.path}\0{module.digest}\n".encode())
        return h.hexdigest()[:16]


def runtime_modules(job_params: Mapping[str, Any] | None) -> list[str]:
    """The modules a job imports by name at run time, read off what its job file names, from
    the three registries that choose code by a params.yaml name: each dataset's builder
    (:data:`stages.data.builders.BUILDERS`, imported when its options are parsed or it is
    built), each architecture's family (:data:`stages.models.registry.FAMILIES`) and each
    attack's kind (:data:`stages.attack_kinds.KIND_MODULES`)."""
    from stages.attack_kinds import KIND_MODULES
    from stages.data.builders import BUILDERS
    from stages.models.registry import FAMILIES

    if not job_params:
        return []
    chosen = {
        "datasets": ("builder", {name: b.module for name, b in BUILDERS.items()}),
        "architectures": ("family", {name: f.module for name, f in FAMILIES.items()}),
        "attacks": ("kind", KIND_MODULES),
    }
    modules: set[str] = set()
    for section, (key, registry) in chosen.items():
        for entry in job_params.get(section, {}).values():
            if isinstance(entry, Mapping) and entry.get(key) in registry:
                modules.add(registry[entry[key]])
    return sorted(modules)


def stage_module(command: str) -> str:
    """The entry module of a job's command (``python -m stages.<name> …``)."""
    words = command.split()
    try:
        return words[words.index("-m") + 1]
    except (ValueError, IndexError):
        raise ValueError(f"not a `python -m <module>` command: {command!r}") from None
