"""Retail domain: spec 000's stock and sales tables.

Volumes: products, clients, entries, distributions and sales are spec 000's
profile table; suppliers and stores are ours (a supplier per ~25 products at
MEDIUM, a store chain that grows from 3 to 100 shops). Items follow their
headers: 1-6 per entry, 1-8 per distribution, 1-5 per sale.
"""

from pytest_oltpseed.domains import Domain, sql_root

DOMAIN = Domain(
    name="retail",
    sql=sql_root() / "retail",
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
    volumes={
        "SMALL": {
            "suppliers": 5,
            "stores": 3,
            "products": 50,
            "clients": 20,
            "product_entries": 20,
            "internal_distributions": 15,
            "sales": 30,
        },
        "MEDIUM": {
            "suppliers": 20,
            "stores": 10,
            "products": 500,
            "clients": 100,
            "product_entries": 200,
            "internal_distributions": 150,
            "sales": 300,
        },
        "LARGE": {
            "suppliers": 100,
            "stores": 30,
            "products": 5000,
            "clients": 1000,
            "product_entries": 2000,
            "internal_distributions": 1500,
            "sales": 3000,
        },
        "STRESS": {
            "suppliers": 500,
            "stores": 100,
            "products": 50000,
            "clients": 10000,
            "product_entries": 20000,
            "internal_distributions": 15000,
            "sales": 30000,
        },
    },
)
