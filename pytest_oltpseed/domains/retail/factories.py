"""Retail factories: the single definition of every retail column (spec 000).

Stock flows supplier -> warehouse (entries) -> store (distributions) -> client
(sales), and the factories keep it whole: before a sale item is written, the
store is restocked when short (a distribution, itself backed by an entry),
so a store never sells more of a product than it received. Totals always
equal the sum of their items. SKUs derive from product names (spec 000 §4.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql

from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.factory import Col, Context, Items, Parent, Row, SQLFactory
from pytest_oltpseed.domains.retail.catalog import product_at

DOMAIN = "retail"
CENTS = Decimal("0.01")
COMPANY_KINDS = ("Distribuidora", "Comercial", "Atacadista", "Indústria",
                 "Importadora", "Alimentos")  # fmt: skip
COMPANY_SUFFIX = ("Ltda", "S.A.", "Eireli", "ME", "EPP")
STORE_BRANDS = ("Mercado", "Loja", "Supermercado", "Empório", "Atacarejo")
SALE_STATUS = {"completed": 92, "cancelled": 5, "returned": 3}
PAYMENT = {"pix": 35, "credit": 30, "debit": 20, "cash": 12, "boleto": 3}
DISTRIBUTION_STATUS = {"received": 88, "in_transit": 6, "pending": 4, "cancelled": 2}
ENTRY_STATUS = {"received": 95, "pending": 3, "cancelled": 2}
SALE_QUANTITY = {"1": 60, "2": 25, "3": 8, "4": 4, "5": 3}
CLIENT_COMPANIES = 0.15  # share of clients that are companies (CNPJ)
HISTORY = timedelta(days=365)
PRODUCT_CARRY = ("price", "cost")  # what items read from their product
RESTOCK_LAG = (timedelta(hours=12), timedelta(days=10))
STORE_MARGIN = (12, 60)  # units a restock adds beyond the shortfall
WAREHOUSE_MARGIN = (60, 240)


def _money(value: float) -> Decimal:
    return Decimal(value).quantize(CENTS)


def _company(g: Context) -> str:
    return (
        f"{g.choice(COMPANY_KINDS)} {g.choice(g.pools.last_names)} "
        f"{g.choice(COMPANY_SUFFIX)}"
    )


class Supplier(SQLFactory):
    _table, _domain = "suppliers", DOMAIN
    _natural_key = ("cnpj",)

    class Meta:
        exclude = ("place",)

    name = Col(lambda g, r: _company(g))
    cnpj = Col(lambda g, r: brazil.cnpj(g.next_index(DOMAIN, "suppliers.cnpj")))
    email = Col(
        lambda g, r: f"comercial{g.randint(1, 99)}@{brazil.unmask(r.cnpj)[:8]}.com.br"
    )
    phone = Col(lambda g, r: brazil.phone(g.rng.random))
    place = Col(lambda g, r: g.choice(g.pools.cities))
    city = Col(lambda g, r: r.place[0])
    state = Col(lambda g, r: r.place[1])


class Store(SQLFactory):
    _table, _domain = "stores", DOMAIN
    _natural_key = ("code",)

    class Meta:
        exclude = ("place",)

    code = Col(lambda g, r: f"LJ{g.next_index(DOMAIN, 'stores.code') + 1:04d}")
    place = Col(lambda g, r: g.choice(g.pools.cities))
    name = Col(
        lambda g, r: (
            f"{g.choice(STORE_BRANDS)} {r.place[0]} {g.choice(g.pools.bairros)}"[:120]
        )
    )
    city = Col(lambda g, r: r.place[0])
    state = Col(lambda g, r: r.place[1])
    opened_at = Col(
        lambda g, r: g.day(
            g.as_of.date() - timedelta(days=3650), g.as_of.date() - timedelta(days=400)
        )
    )


class Product(SQLFactory):
    _table, _domain = "products", DOMAIN
    _natural_key = ("sku",)

    class Meta:
        exclude = ("entry",)

    entry = Col(lambda g, r: product_at(g.next_index(DOMAIN, "products.name")))
    name = Col(lambda g, r: r.entry[1])
    sku = Col(lambda g, r: brazil.sku(r.entry[1], r.entry[0].prefix))
    category = Col(lambda g, r: r.entry[0].name)
    unit = Col(lambda g, r: r.entry[0].unit)
    cost = Col(lambda g, r: _money(g.rng.uniform(*r.entry[0].cost)))
    price = Col(lambda g, r: _money(float(r.cost) * g.rng.uniform(1.25, 1.9)))
    active = Col(lambda g, r: g.rng.random() < 0.97)


def _client_doc(g: Context, r: Any) -> str:
    if r.company:
        return brazil.cnpj(g.next_index(DOMAIN, "clients.cnpj"))
    return brazil.cpf(g.next_index(DOMAIN, "clients.cpf"))


class Client(SQLFactory):
    _table, _domain = "clients", DOMAIN
    _natural_key = ("cpf_cnpj",)

    class Meta:
        exclude = ("company",)

    company = Col(lambda g, r: g.rng.random() < CLIENT_COMPANIES)
    name = Col(lambda g, r: _company(g) if r.company else g.person_name())
    cpf_cnpj = Col(_client_doc)
    email = Col(lambda g, r: g.email(r.name))
    phone = Col(lambda g, r: brazil.phone(g.rng.random))
    address = Col(lambda g, r: g.address())


class ProductEntryItem(SQLFactory):
    _table, _domain = "product_entry_items", DOMAIN
    _distinct = "product_id"

    entry_id = Parent("product_entries")
    quantity = Col(lambda g, r: g.randint(10, 200))
    product_id = Parent("products", carry=PRODUCT_CARRY)
    unit_cost = Col(lambda g, r: g.parent(r.product_id, "products")["cost"])

    @classmethod
    def _after_insert(cls, ctx: Context, row: Row) -> None:
        _add_to_total(
            ctx,
            "product_entries",
            "total_cost",
            row.entry_id,
            row.quantity * row.unit_cost,
        )


class ProductEntry(SQLFactory):
    _table, _domain = "product_entries", DOMAIN

    supplier_id = Parent("suppliers", prefer_existing=True)
    invoice_number = Col(
        lambda g, r: (
            f"NF-{g.next_index(DOMAIN, 'product_entries.invoice', fresh=True) + 1:09d}"
        )
    )
    entry_date = Col(lambda g, r: g.moment(g.as_of - HISTORY, g.as_of))
    status = Col(lambda g, r: g.weighted(ENTRY_STATUS))
    items = Items("product_entry_items", "entry_id", 1, 6)
    total_cost = Col(
        lambda g, r: sum(
            (i["quantity"] * i["unit_cost"] for i in r.items), Decimal("0.00")
        )
    )


class InternalDistributionItem(SQLFactory):
    _table, _domain = "internal_distribution_items", DOMAIN
    _distinct = "product_id"

    distribution_id = Parent("internal_distributions")
    quantity = Col(lambda g, r: g.randint(5, 100))
    product_id = Parent("products", carry=PRODUCT_CARRY)

    @classmethod
    def _before_insert(cls, ctx: Context, row: Row) -> None:
        head = ctx.parent(row.distribution_id, "internal_distributions")
        if head["status"] != "cancelled":
            ensure_warehouse_stock(
                ctx, row.product_id, row.quantity, head["distributed_at"]
            )


class InternalDistribution(SQLFactory):
    _table, _domain = "internal_distributions", DOMAIN

    store_id = Parent("stores", prefer_existing=True)
    distributed_at = Col(lambda g, r: g.moment(g.as_of - HISTORY, g.as_of))
    status = Col(lambda g, r: g.weighted(DISTRIBUTION_STATUS))
    items = Items(
        "internal_distribution_items",
        "distribution_id",
        1,
        8,
        header=("distributed_at", "status"),
    )


def _on_the_shelf(ctx: Context, row: Any, product: Mapping[str, Any]) -> bool:
    """A customer buys what the store stocks: with the stream's stock tally,
    prefer a product the sale's store holds (a product it lacks costs a
    restock, a distribution and maybe an entry: four more rows, and on a
    big catalogue nearly every item would need one)."""
    if ctx.state is None:
        return True
    store = ref_value(ctx.parent(row.sale_id, "sales")["store_id"])
    key = ("store", store, int(product["id"]))
    return _available(ctx, key, STORE_STOCK, {"s": store, "p": key[2]}) > 0


class SaleItem(SQLFactory):
    _table, _domain = "sale_items", DOMAIN
    _distinct = "product_id"

    sale_id = Parent("sales")
    quantity = Col(lambda g, r: int(g.weighted(SALE_QUANTITY)))
    product_id = Parent("products", carry=PRODUCT_CARRY, prefer=_on_the_shelf)
    unit_price = Col(lambda g, r: g.parent(r.product_id, "products")["price"])
    subtotal = Col(lambda g, r: r.quantity * r.unit_price)

    @classmethod
    def _before_insert(cls, ctx: Context, row: Row) -> None:
        sale = ctx.parent(row.sale_id, "sales")
        if sale["status"] != "cancelled":
            ensure_store_stock(
                ctx,
                ref_value(sale["store_id"]),
                row.product_id,
                row.quantity,
                sale["sold_at"],
            )

    @classmethod
    def _after_insert(cls, ctx: Context, row: Row) -> None:
        _add_to_total(ctx, "sales", "total", row.sale_id, row.subtotal)


class Sale(SQLFactory):
    _table, _domain = "sales", DOMAIN

    store_id = Parent("stores", carry=("opened_at",), prefer_existing=True)
    client_id = Parent("clients")
    sold_at = Col(lambda g, r: g.moment(g.as_of - HISTORY, g.as_of))
    status = Col(lambda g, r: g.weighted(SALE_STATUS))
    payment_method = Col(lambda g, r: g.weighted(PAYMENT))
    items = Items(
        "sale_items", "sale_id", 1, 5, header=("store_id", "sold_at", "status")
    )
    total = Col(lambda g, r: sum((i["subtotal"] for i in r.items), Decimal("0.00")))


# -- cross-row rules ----------------------------------------------------------------
def ref_value(value: Any) -> int:
    """An FK value (Ref, row or id) as an id."""
    from pytest_oltpseed.data.factory import ref_id

    return int(ref_id(value))


def _add_to_total(
    ctx: Context, table: str, column: str, parent: Any, amount: Decimal
) -> None:
    query = sql.SQL("UPDATE {t} SET {c} = {c} + %s WHERE id = %s").format(
        t=sql.Identifier(table), c=sql.Identifier(column)
    )
    ctx.execute(table, "update", query.as_string(None), (amount, ref_value(parent)))


def _lag(ctx: Context) -> timedelta:
    low, high = RESTOCK_LAG
    return low + timedelta(seconds=ctx.randint(0, int((high - low).total_seconds())))


STORE_STOCK = (
    "SELECT coalesce((SELECT sum(di.quantity) FROM internal_distribution_items di "
    "JOIN internal_distributions d ON d.id = di.distribution_id "
    "WHERE d.store_id = %(s)s AND di.product_id = %(p)s "
    "AND d.status = 'received'), 0) - coalesce((SELECT sum(si.quantity) "
    "FROM sale_items si JOIN sales s ON s.id = si.sale_id "
    "WHERE s.store_id = %(s)s AND si.product_id = %(p)s "
    "AND s.status <> 'cancelled'), 0)"
)
WAREHOUSE_STOCK = (
    "SELECT coalesce((SELECT sum(ei.quantity) FROM product_entry_items ei "
    "JOIN product_entries e ON e.id = ei.entry_id WHERE ei.product_id = %(p)s "
    "AND e.status = 'received'), 0) - coalesce((SELECT sum(di.quantity) "
    "FROM internal_distribution_items di JOIN internal_distributions d "
    "ON d.id = di.distribution_id WHERE di.product_id = %(p)s "
    "AND d.status <> 'cancelled'), 0)"
)


STOCK_TALLY = (
    "SELECT 'store', store_id, product_id, sum(q) FROM ("
    " SELECT d.store_id, di.product_id, di.quantity AS q"
    " FROM internal_distribution_items di JOIN internal_distributions d"
    " ON d.id = di.distribution_id WHERE d.status = 'received'"
    " UNION ALL SELECT s.store_id, si.product_id, -si.quantity"
    " FROM sale_items si JOIN sales s ON s.id = si.sale_id"
    " WHERE s.status <> 'cancelled') AS moves GROUP BY store_id, product_id "
    "UNION ALL SELECT 'warehouse', NULL, product_id, sum(q) FROM ("
    " SELECT ei.product_id, ei.quantity AS q FROM product_entry_items ei"
    " JOIN product_entries e ON e.id = ei.entry_id WHERE e.status = 'received'"
    " UNION ALL SELECT di.product_id, -di.quantity"
    " FROM internal_distribution_items di JOIN internal_distributions d"
    " ON d.id = di.distribution_id WHERE d.status <> 'cancelled') AS moves "
    "GROUP BY product_id"
)


def _available(ctx: Context, key: tuple[Any, ...], query: str, params: Any) -> int:
    """Units on hand: asked of the database, or, when the context keeps state
    (the stream), read from a tally of every store and the warehouse loaded
    in one query and kept current by the writes made through it.

    The tally only ever under-counts (stock others add is not seen) except
    after a rollback or a while, both of which clear it (``Context.state``).
    """
    assert ctx.conn is not None
    if ctx.state is None:
        row = ctx.conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0
    tally = ctx.state.get("stock")
    if tally is None:
        tally = ctx.state["stock"] = {}
        for kind, store, product, units in ctx.conn.execute(STOCK_TALLY):
            place = (kind, store, product) if kind == "store" else (kind, product)
            tally[place] = int(units)
    return int(tally.get(key, 0))


def load_stock(ctx: Context) -> None:
    """Load the stream's stock tally now, if it keeps one and has none."""
    if ctx.state is not None:
        _available(ctx, ("warehouse", 0), WAREHOUSE_STOCK, {"p": 0})


def _take(ctx: Context, key: tuple[Any, ...], quantity: int) -> None:
    if ctx.state is not None and "stock" in ctx.state:
        tally = ctx.state["stock"]
        tally[key] = tally.get(key, 0) - quantity


def _restock(ctx: Context, factory: type[SQLFactory], **fields: Any) -> None:
    """What ``factory.create(**fields)`` writes, without factory_boy's steps:
    a restock runs inside a sale's item and was a fifth of a retail stream's
    time through ``create()`` (1.4 ms a restock against 0.5 ms this way)."""
    overrides = factory.normalize(fields)
    factory.write(ctx, factory.make_row(ctx, create=True, overrides=overrides))


def ensure_store_stock(
    ctx: Context, store_id: int, product: Any, quantity: int, at: datetime
) -> None:
    """Restock ``store_id`` from the warehouse when it holds less than ``quantity``.

    ``product`` is the item's FK value: a Ref carries the product's cost on to
    the restock, so no lookup by id waits on the server mid-batch."""
    product_id = ref_value(product)
    key = ("store", store_id, product_id)
    available = _available(ctx, key, STORE_STOCK, {"s": store_id, "p": product_id})
    if available < quantity:
        need = quantity - available + ctx.randint(*STORE_MARGIN)
        _restock(
            ctx,
            InternalDistribution,
            store_id=store_id,
            distributed_at=at - _lag(ctx),
            status="received",
            items=[Row(product_id=product, quantity=need)],
        )
        _take(ctx, key, -need)
    _take(ctx, key, quantity)


def ensure_warehouse_stock(
    ctx: Context, product: Any, quantity: int, at: datetime
) -> None:
    """Receive an entry when the warehouse holds less than ``quantity``."""
    product_id = ref_value(product)
    key = ("warehouse", product_id)
    available = _available(ctx, key, WAREHOUSE_STOCK, {"p": product_id})
    if available < quantity:
        need = quantity - available + ctx.randint(*WAREHOUSE_MARGIN)
        cost = ctx.parent(product, "products")["cost"]
        _restock(
            ctx,
            ProductEntry,
            entry_date=at - _lag(ctx),
            status="received",
            items=[Row(product_id=product, quantity=need, unit_cost=cost)],
        )
        _take(ctx, key, -need)
    _take(ctx, key, quantity)
