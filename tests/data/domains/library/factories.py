"""library factories: each column declared once, for create() and for COPY."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pytest_oltpseed.data.factory import Col, Parent, SQLFactory

DOMAIN = "library"
GENRES = {"novel": 50, "essay": 20, "poetry": 10, "children": 20}
WORDS = ("Noite", "Rio", "Casa", "Sertão", "Mar", "Memórias", "Vidas", "Tempo")


class Author(SQLFactory):
    _table, _domain = "authors", DOMAIN

    name = Col(lambda g, r: g.person_name())
    city = Col(lambda g, r: g.choice(g.pools.cities)[0])


class Book(SQLFactory):
    _table, _domain = "books", DOMAIN

    author_id = Parent("authors")
    title = Col(lambda g, r: f"{g.choice(WORDS)} {g.choice(WORDS).lower()}")
    genre = Col(lambda g, r: g.weighted(GENRES))
    price = Col(lambda g, r: Decimal(g.randint(1990, 15990)) / 100)
    published_on = Col(
        lambda g, r: g.day(g.as_of.date() - timedelta(days=3650), g.as_of.date())
    )
