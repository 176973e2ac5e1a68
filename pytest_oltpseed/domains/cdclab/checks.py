"""cdclab rules for ``oltpseed check``: the preconditions of its edge cases."""

from __future__ import annotations

from pytest_oltpseed.validators import RowRule, Rule

TOAST_MIN = 8192  # bytes: well past the ~2 kB at which a value goes out of line

RULES: list[Rule] = [
    RowRule(
        "lab_documents.body is large enough to be TOASTed",
        "lab_documents",
        lambda r: len(r["body"]) > TOAST_MIN,
    ),
    RowRule(
        "lab_documents_full.body is large enough to be TOASTed",
        "lab_documents_full",
        lambda r: len(r["body"]) > TOAST_MIN,
    ),
    RowRule(
        "lab_types.code matches its domain",
        "lab_types",
        lambda r: r["code"] is None or len(r["code"]) == 8,
    ),
]
