"""library rules for ``oltpseed check`` (FK orphans are checked for every domain)."""

from __future__ import annotations

from pytest_oltpseed.validators import QueryRule, RowRule, Rule, ShareRule

RULES: list[Rule] = [
    RowRule("books.price is positive", "books", lambda r: r["price"] > 0),
    QueryRule(
        "books.title is not blank",
        "books",
        "SELECT id FROM books WHERE btrim(title) = ''",
    ),
    ShareRule(
        "about half the books are novels",
        "books",
        "genre = 'novel'",
        0.5,
        tolerance=0.06,
    ),
]
