"""Rooms of a sensible size: a module of `stages/` over 600 lines says why in its docstring
("Why one module"), so that growth past that size is a decision, not an accident."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT = 600


def test_every_module_over_600_lines_states_why_it_is_one_module() -> None:
    unexplained = []
    for path in sorted((REPO / "stages").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= LIMIT:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module" not in docstring:
            unexplained.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert not unexplained, f"split these or say why in their docstring: {unexplained}"
