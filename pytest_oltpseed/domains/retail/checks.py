"""Retail rules for ``oltpseed check`` and the row validators (spec 000)."""

from __future__ import annotations

from pytest_oltpseed.data import brazil
from pytest_oltpseed.validators import QueryRule, RowRule, Rule, optional

RULES: list[Rule] = [
    RowRule(
        "suppliers.cnpj has valid check digits",
        "suppliers",
        lambda r: brazil.is_valid_cnpj(r["cnpj"]),
    ),
    RowRule(
        "suppliers.phone is a Brazilian number",
        "suppliers",
        optional(brazil.is_valid_phone, "phone"),
    ),
    RowRule(
        "clients.cpf_cnpj is a valid CPF or CNPJ",
        "clients",
        lambda r: (
            brazil.is_valid_cpf(r["cpf_cnpj"]) or brazil.is_valid_cnpj(r["cpf_cnpj"])
        ),
    ),
    RowRule(
        "clients.phone is a Brazilian number",
        "clients",
        optional(brazil.is_valid_phone, "phone"),
    ),
    RowRule(
        "products.sku derives from the name",
        "products",
        lambda r: brazil.is_valid_sku(r["sku"], r["name"]),
    ),
    RowRule(
        "products.price and cost > 0",
        "products",
        lambda r: r["price"] > 0 and r["cost"] > 0,
    ),
    RowRule(
        "sale_items.subtotal = quantity x unit_price",
        "sale_items",
        lambda r: r["subtotal"] == r["quantity"] * r["unit_price"],
    ),
    RowRule(
        "sales.sold_at after the store opened",
        "sales",
        lambda r: r["sold_at"].date() >= r["store_id.opened_at"],
        ("store_id.opened_at",),
    ),
    QueryRule(
        "sales.total = sum of its items",
        "sales",
        "SELECT s.id FROM sales s LEFT JOIN sale_items i ON i.sale_id = s.id "
        "GROUP BY s.id HAVING s.total <> coalesce(sum(i.subtotal), 0) ORDER BY s.id",
    ),
    QueryRule(
        "sales have at least one item",
        "sales",
        "SELECT s.id FROM sales s WHERE NOT EXISTS "
        "(SELECT 1 FROM sale_items i WHERE i.sale_id = s.id) ORDER BY s.id",
    ),
    QueryRule(
        "product_entries.total_cost = sum of its items",
        "product_entries",
        "SELECT e.id FROM product_entries e LEFT JOIN product_entry_items i "
        "ON i.entry_id = e.id GROUP BY e.id "
        "HAVING e.total_cost <> coalesce(sum(i.quantity * i.unit_cost), 0) "
        "ORDER BY e.id",
    ),
    QueryRule(
        "a store never sells more of a product than it received",
        "sale_items",
        "WITH sold AS (SELECT s.store_id, i.product_id, sum(i.quantity) AS q, "
        "min(s.id) AS example FROM sale_items i JOIN sales s ON s.id = i.sale_id "
        "WHERE s.status <> 'cancelled' GROUP BY 1, 2), "
        "received AS (SELECT d.store_id, i.product_id, sum(i.quantity) AS q "
        "FROM internal_distribution_items i JOIN internal_distributions d "
        "ON d.id = i.distribution_id WHERE d.status = 'received' GROUP BY 1, 2) "
        "SELECT sold.example FROM sold LEFT JOIN received USING (store_id, "
        "product_id) WHERE sold.q > coalesce(received.q, 0) ORDER BY 1",
    ),
    QueryRule(
        "the warehouse never ships more of a product than it received",
        "internal_distribution_items",
        "WITH shipped AS (SELECT i.product_id, sum(i.quantity) AS q, "
        "min(d.id) AS example FROM internal_distribution_items i "
        "JOIN internal_distributions d ON d.id = i.distribution_id "
        "WHERE d.status <> 'cancelled' GROUP BY 1), "
        "entered AS (SELECT i.product_id, sum(i.quantity) AS q "
        "FROM product_entry_items i JOIN product_entries e ON e.id = i.entry_id "
        "WHERE e.status = 'received' GROUP BY 1) "
        "SELECT shipped.example FROM shipped LEFT JOIN entered USING (product_id) "
        "WHERE shipped.q > coalesce(entered.q, 0) ORDER BY 1",
    ),
]
"""Every retail rule, in report order."""
