"""library stream events: a new book (and sometimes its new author), repricing."""

from __future__ import annotations

from decimal import Decimal

from library.factories import Book
from pytest_oltpseed.stream.events import Event, StreamContext


def new_book(ctx: StreamContext) -> None:
    """A book is published; its author is an existing one (or a new one)."""
    Book.write(
        ctx,
        Book.make_row(ctx, create=True, overrides={"published_on": ctx.as_of.date()}),
    )


def reprice(ctx: StreamContext) -> None:
    """A book's price moves by -10%..+10%."""
    book = ctx.existing("books")
    price = (book["price"] * Decimal(str(ctx.rng.uniform(0.9, 1.1)))).quantize(
        Decimal("0.01")
    )
    ctx.execute(
        "books",
        "update",
        "UPDATE books SET price = %s WHERE id = %s",
        (price, book["id"]),
    )
    ctx.after_commit(lambda: book.__setitem__("price", price))


EVENTS = (
    Event("new_book", 60, new_book, ("books", "authors"), "book published"),
    Event("reprice", 40, reprice, ("books",), "book price changed"),
)
