"""Retail domain: spec 000's stock and sales tables."""

from pytest_oltpseed.domains import Domain

DOMAIN = Domain(
    name="retail",
    tables=(
        "suppliers",
        "stores",
        "products",
        "clients",
        "product_entries",
        "product_entry_items",
        "internal_distributions",
        "internal_distribution_items",
        "sales",
        "sale_items",
    ),
)
