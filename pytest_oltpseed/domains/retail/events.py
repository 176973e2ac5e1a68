"""Retail stream events: sales, stock movements, price and client changes.

Sales, entries and distributions are the factories' own (items, totals, and a
restock before any item a store could not cover), so stock never goes
negative. Default weights (out of 200): inserts about 61% of events, updates
38%, deletes 1% (a sale item removed, its sale's total lowered with it).
"""

from __future__ import annotations

from decimal import Decimal

from pytest_oltpseed.data import brazil
from pytest_oltpseed.domains.retail.factories import (
    CENTS,
    Client,
    InternalDistribution,
    ProductEntry,
    Sale,
    load_stock,
)
from pytest_oltpseed.stream.events import Event, StreamContext

COMPLETED = "status = 'completed'"
SEVERAL_ITEMS = "(SELECT count(*) FROM sale_items i WHERE i.sale_id = sales.id) > 1"
REMOVE_ITEM = """
WITH gone AS (
  DELETE FROM sale_items
  WHERE id = (SELECT max(id) FROM sale_items WHERE sale_id = %(sale)s)
    AND (SELECT count(*) FROM sale_items WHERE sale_id = %(sale)s) > 1
  RETURNING id, sale_id, subtotal
)
UPDATE sales SET total = sales.total - gone.subtotal
FROM gone WHERE sales.id = gone.sale_id
RETURNING gone.id, sales.id
"""


def sale(ctx: StreamContext) -> None:
    """A sale now, 1-5 items, total = sum of subtotals."""
    Sale.write(ctx, Sale.make_row(ctx, create=True, overrides={"sold_at": ctx.as_of}))


def stock_entry(ctx: StreamContext) -> None:
    """Goods received from a supplier into the warehouse, 1-6 items."""
    row = ProductEntry.make_row(ctx, create=True, overrides={"entry_date": ctx.as_of})
    ProductEntry.write(ctx, row)


def distribution(ctx: StreamContext) -> None:
    """Goods sent from the warehouse to a store, 1-8 items (warehouse restocked
    first when short)."""
    row = InternalDistribution.make_row(
        ctx, create=True, overrides={"distributed_at": ctx.as_of}
    )
    InternalDistribution.write(ctx, row)


def new_client(ctx: StreamContext) -> None:
    """A client registers (a person with CPF, or a company with CNPJ)."""
    Client.write(ctx, Client.make_row(ctx, create=True))


def price_change(ctx: StreamContext) -> None:
    """A product's price moves -8%..+12%, never below cost plus 10%."""
    product = ctx.existing("products")
    moved = Decimal(str(ctx.rng.uniform(0.92, 1.12))) * product["price"]
    price = max(moved, product["cost"] * Decimal("1.10")).quantize(CENTS)
    ctx.execute(
        "products",
        "update",
        "UPDATE products SET price = %s WHERE id = %s",
        (price, product["id"]),
    )
    ctx.after_commit(lambda: product.__setitem__("price", price))


def client_update(ctx: StreamContext) -> None:
    """A client's new phone, e-mail or address."""
    client = ctx.existing("clients")
    what = ctx.randint(0, 2)
    if what == 0:
        query = "UPDATE clients SET phone = %s WHERE id = %s"
        value = brazil.phone(ctx.rng.random)
    elif what == 1:
        query = "UPDATE clients SET email = %s WHERE id = %s"
        value = ctx.email(client["name"])
    else:
        query = "UPDATE clients SET address = %s WHERE id = %s"
        value = ctx.address()
    ctx.execute("clients", "update", query, (value, client["id"]))


def sale_return(ctx: StreamContext) -> None:
    """A completed sale is returned."""
    found = ctx.take("sales", (), COMPLETED)
    ctx.execute(
        "sales",
        "update",
        "UPDATE sales SET status = 'returned' WHERE id = %s AND status = 'completed'",
        (found["id"],),
    )


def sale_item_delete(ctx: StreamContext) -> None:
    """One item removed from a sale of several (a leaf row), the total lowered."""
    found = ctx.take("sales", (), SEVERAL_ITEMS)
    ctx.execute(  # one sale updated per item gone, in that order (the WAL's)
        "sale_items",
        "delete",
        REMOVE_ITEM,
        {"sale": found["id"]},
        also=(("sales", "update"),),
    )


EVENTS = (
    Event("sale", 80, sale, ("sales", "sale_items", "internal_distributions",
          "internal_distribution_items", "product_entries", "product_entry_items"),
          "sale with 1-5 items (store restocked when short)"),
    Event("stock_entry", 14, stock_entry, ("product_entries", "product_entry_items"),
          "supplier delivery with 1-6 items"),
    Event("distribution", 16, distribution, ("internal_distributions",
          "internal_distribution_items", "product_entries", "product_entry_items"),
          "warehouse to store, 1-8 items"),
    Event("new_client", 16, new_client, ("clients",), "client registered"),
    Event("price_change", 30, price_change, ("products",), "product price changed",
          late=True),
    Event("client_update", 34, client_update, ("clients",),
          "client phone, e-mail or address changed"),
    Event("sale_return", 8, sale_return, ("sales",), "completed sale returned"),
    Event("sale_item_delete", 2, sale_item_delete, ("sale_items", "sales"),
          "sale item deleted, sale total lowered"),
)  # fmt: skip

WARM = (load_stock,)  # the stock tally, loaded before the stream's clock starts
