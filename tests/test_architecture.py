"""The package layout's rules (docs/architecture.md), checked on the source.

Imports flow shells -> jobs -> core, and a class past ~300 lines is split:
both drift silently, one convenient import or method at a time.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_oltpseed"
CORE = {"errors", "names", "profiles", "config", "logs", "console", "db"}
CLASS_LINES = 300
# split pending (owned by other work); the list may only shrink
LONG_CLASSES = {
    "ui/jobs.py:Hub",
}


def _top_level_imports(path: Path) -> set[str]:
    """pytest_oltpseed modules imported at module level (not in a function or
    under TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "pytest_oltpseed":
                found.update(f"pytest_oltpseed.{a.name}" for a in node.names)
            elif node.module.startswith("pytest_oltpseed."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(
                a.name for a in node.names if a.name.startswith("pytest_oltpseed.")
            )
    return found


def test_core_modules_import_only_the_core() -> None:
    for name in sorted(CORE):
        imported = _top_level_imports(PACKAGE / f"{name}.py")
        outside = {
            module
            for module in imported
            if module.split(".")[1] not in CORE and module != "pytest_oltpseed"
        }
        assert not outside, f"{name}.py imports {sorted(outside)} at the top"


def test_no_class_grows_past_300_lines() -> None:
    long = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.end_lineno is None:
                continue
            if node.end_lineno - node.lineno + 1 > CLASS_LINES:
                long.add(f"{path.relative_to(PACKAGE).as_posix()}:{node.name}")
    assert long <= LONG_CLASSES, f"split these: {sorted(long - LONG_CLASSES)}"
