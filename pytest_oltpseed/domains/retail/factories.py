"""Retail factories: the single definition of every retail column (spec 000).

Stock flows supplier -> warehouse (entries) -> store (distributions) -> client
(sales), and the factories keep it whole: before a sale item is written, the
store is restocked when short (a distribution, itself backed by an entry),
so a store never sells more of a product than it received. Totals always
equal the sum of their items. SKUs derive from product names (spec 000 §4.2).

Every column is a generator of :mod:`pytest_oltpseed.data.columns`, so the
same declaration makes one value (``create()``, the stream) or a whole
column (the seeder, see :mod:`pytest_oltpseed.seed.headers`); the seeder
keeps the stock rule with its own stage hooks (``seeding.py``) instead of
restocking.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import sql

from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.columns import (
    AsOf,
    Cents,
    Choice,
    Day,
    Derived,
    Email,
    Flag,
    Indexed,
    IndexedBy,
    Int,
    Join,
    Moment,
    Number,
    ParentValue,
    PoolChoice,
    PoolIndex,
    PoolItem,
    Scaled,
    Switch,
    Times,
    Total,
    Weighted,
)
from pytest_oltpseed.data.factory import (
    Col,
    Context,
    Items,
    Param,
    Parent,
    Row,
    SQLFactory,
    Trait,
    ref_id,
)
from pytest_oltpseed.data.people import ADDRESS, NAME, PHONE
from pytest_oltpseed.domains.retail.catalog import CATEGORIES, names_many, product_at

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
SALE_QUANTITY = {1: 60, 2: 25, 3: 8, 4: 4, 5: 3}
CLIENT_COMPANIES = 0.15  # share of clients that are companies (CNPJ)
HISTORY = timedelta(days=365)
PRODUCT_CARRY = ("price", "cost")  # what items read from their product
RESTOCK_LAG = (timedelta(hours=12), timedelta(days=10))
STORE_MARGIN = (12, 60)  # units a restock adds beyond the shortfall
WAREHOUSE_MARGIN = (60, 240)


COMPANY = Join(
    Choice(COMPANY_KINDS), " ", PoolChoice("last_names"), " ", Choice(COMPANY_SUFFIX)
)
_RECENT = Moment(AsOf(-HISTORY), AsOf())


def _invoice(n: int) -> str:
    return f"NF-{n + 1:09d}"


def _invoices(ns: Any) -> Any:
    import numpy as np

    return "NF-" + np.strings.zfill((ns + 1).astype(str), 9).astype(object)


def _store_code(n: int) -> str:
    return f"LJ{n + 1:04d}"


def _store_codes(ns: Any) -> Any:
    import numpy as np

    return "LJ" + np.strings.zfill((ns + 1).astype(str), 4).astype(object)


def _same(ns: Any) -> Any:
    return ns


class Supplier(SQLFactory):
    _table, _domain = "suppliers", DOMAIN
    _natural_key = ("cnpj",)

    class Meta:
        exclude = ("place",)

    name = Col(COMPANY)
    cnpj = Col(Indexed(DOMAIN, "suppliers.cnpj", brazil.cnpj, brazil.cnpj_many))
    email = Col(
        Join(
            "comercial",
            Int(1, 99),
            "@",
            Derived(lambda cnpj: brazil.unmask(cnpj)[:8], "cnpj"),
            ".com.br",
        )
    )
    phone = Col(PHONE)
    place = Col(PoolIndex("cities"))
    city = Col(PoolItem("place", "cities", 0))
    state = Col(PoolItem("place", "cities", 1))


class Store(SQLFactory):
    _table, _domain = "stores", DOMAIN
    _natural_key = ("code",)

    class Meta:
        exclude = ("place",)

    code = Col(Indexed(DOMAIN, "stores.code", _store_code, _store_codes))
    place = Col(PoolIndex("cities"))
    name = Col(
        Join(
            Choice(STORE_BRANDS),
            " ",
            PoolItem("place", "cities", 0),
            " ",
            PoolChoice("bairros"),
            limit=120,
        )
    )
    city = Col(PoolItem("place", "cities", 0))
    state = Col(PoolItem("place", "cities", 1))
    opened_at = Col(Day(-3650, -400))


def _category(n: Any) -> Any:
    return n % len(CATEGORIES)


def _of(field: str) -> Any:
    """A category field over an array of category numbers."""

    def many(kinds: Any) -> Any:
        import numpy as np

        values = np.array([getattr(c, field) for c in CATEGORIES], dtype=object)
        return values[kinds]

    return many


class Product(SQLFactory):
    _table, _domain = "products", DOMAIN
    _natural_key = ("sku",)

    class Meta:
        exclude = ("entry", "kind")

    entry = Col(Indexed(DOMAIN, "products.name", int, _same))
    kind = Col(
        Derived(_category, "entry", kind="int", many=_category)
    )  # CATEGORIES[kind]
    name = Col(Derived(lambda n: product_at(n)[1], "entry", many=names_many))
    sku = Col(
        Derived(lambda k, name: brazil.sku(name, CATEGORIES[k].prefix), "kind", "name")
    )
    category = Col(Derived(lambda k: CATEGORIES[k].name, "kind", many=_of("name")))
    unit = Col(Derived(lambda k: CATEGORIES[k].unit, "kind", many=_of("unit")))
    cost = Col(Cents([c.cost for c in CATEGORIES], by="kind"))
    price = Col(Scaled("cost", 1.25, 1.9))
    active = Col(Flag(0.97))


class Client(SQLFactory):
    _table, _domain = "clients", DOMAIN
    _natural_key = ("cpf_cnpj",)

    class Meta:
        exclude = ("company",)

    company = Col(Flag(CLIENT_COMPANIES))
    name = Col(Switch("company", {True: COMPANY}, default=NAME))
    cpf_cnpj = Col(
        IndexedBy(
            DOMAIN,
            "company",
            {True: ("clients.cnpj", brazil.cnpj, brazil.cnpj_many)},
            default=("clients.cpf", brazil.cpf, brazil.cpf_many),
        )
    )
    email = Col(Email("name"))
    phone = Col(PHONE)
    address = Col(ADDRESS)


class ProductEntryItem(SQLFactory):
    _table, _domain = "product_entry_items", DOMAIN
    _distinct = "product_id"

    entry_id = Parent("product_entries")
    quantity = Col(Number(10, 200))
    product_id = Parent("products", carry=PRODUCT_CARRY)
    unit_cost = Col(ParentValue("product_id", "cost", "products"))

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
        Indexed(DOMAIN, "product_entries.invoice", _invoice, _invoices, fresh=True)
    )
    entry_date = Col(_RECENT)
    status = Col(Weighted(ENTRY_STATUS))
    items = Items("product_entry_items", "entry_id", 1, 6)
    total_cost = Col(Total("items", "quantity", "unit_cost"))


class InternalDistributionItem(SQLFactory):
    _table, _domain = "internal_distribution_items", DOMAIN
    _distinct = "product_id"

    distribution_id = Parent("internal_distributions")
    quantity = Col(Number(5, 100))
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
    distributed_at = Col(_RECENT)
    status = Col(Weighted(DISTRIBUTION_STATUS))
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
    quantity = Col(Weighted(SALE_QUANTITY))
    product_id = Parent("products", carry=PRODUCT_CARRY, prefer=_on_the_shelf)
    unit_price = Col(ParentValue("product_id", "price", "products"))
    subtotal = Col(Times("quantity", "unit_price"))

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

    class Params:
        # Sale.create(item_count=3): exactly 3 items, total still their sum
        item_count = Param()
        completed = Trait(status="completed")
        cancelled = Trait(status="cancelled")
        returned = Trait(status="returned")

    store_id = Parent("stores", carry=("opened_at",), prefer_existing=True)
    client_id = Parent("clients")
    sold_at = Col(_RECENT)
    status = Col(Weighted(SALE_STATUS))
    payment_method = Col(Weighted(PAYMENT))
    items = Items(
        "sale_items",
        "sale_id",
        1,
        5,
        header=("store_id", "sold_at", "status"),
        count="item_count",
    )
    total = Col(Total("items", "subtotal"))


# -- cross-row rules ----------------------------------------------------------------
def ref_value(value: Any) -> int:
    """An FK value (Ref, row or id) as an id."""
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
