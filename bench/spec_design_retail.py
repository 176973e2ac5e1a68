"""Spec 000's own retail seeding design, rebuilt as the benchmark's baseline.

Spec 000's ``seeds/*.py`` with ``db_utils.fast_insert``: one Faker call per
field per row (pt_BR), the SKU from the md5 of the product name (§4.2),
uniqueness of CNPJ/CPF/SKU by an in-memory set and retry, base tables with
``ON CONFLICT DO NOTHING`` (§4.1), parent ids fetched from the database before
dependent tables, headers inserted with ``execute_values(..., fetch=True)``
for their ids, then their items, psycopg2 ``execute_values`` with
``page_size`` = batch size, one commit per stage. The spec describes no stock
rule, so none is applied here (which only makes the baseline cheaper).

    python bench/spec_design_retail.py DSN PROFILE    (prints: rows seconds)
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from decimal import Decimal

import psycopg2
from faker import Faker
from psycopg2.extras import execute_values

from pytest_oltpseed.profiles import resolve

CENTS = Decimal("0.01")


def sku(name: str) -> str:
    return "SKU-" + hashlib.md5(name.strip().lower().encode()).hexdigest()[:12].upper()


def main(dsn: str, profile_name: str) -> None:
    profile = resolve(profile_name)
    batch = profile.batch_size
    fake = Faker("pt_BR")
    Faker.seed(0)
    random.seed(0)
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    rows = 0
    started = time.perf_counter()

    def insert(table: str, columns: str, values: list[tuple], tail: str = "") -> list:
        nonlocal rows
        found = execute_values(
            cur,
            f"INSERT INTO {table} ({columns}) VALUES %s {tail}",
            values,
            page_size=batch,
            fetch=tail.startswith("RETURNING"),
        )
        rows += len(values)
        return [r[0] for r in found] if found else []

    def unique(make, seen: set):  # type: ignore[no-untyped-def]
        while True:
            value = make()
            if value not in seen:
                seen.add(value)
                return value

    cnpjs: set[str] = set()
    insert(
        "suppliers",
        "name, cnpj, email, phone, city, state",
        [
            (
                fake.company()[:150],
                unique(fake.cnpj, cnpjs),
                fake.company_email(),
                fake.phone_number()[:20],
                fake.city()[:80],
                fake.estado_sigla(),
            )
            for _ in range(profile.count("suppliers"))
        ],
        "ON CONFLICT (cnpj) DO NOTHING",
    )
    conn.commit()
    insert(
        "stores",
        "code, name, city, state, opened_at",
        [
            (
                f"LJ{n + 1:04d}",
                f"Loja {fake.bairro()}"[:120],
                fake.city()[:80],
                fake.estado_sigla(),
                fake.date_between("-10y", "-400d"),
            )
            for n in range(profile.count("stores"))
        ],
        "ON CONFLICT (code) DO NOTHING",
    )
    conn.commit()
    names: set[str] = set()
    products = []
    for _ in range(profile.count("products")):
        name = unique(
            lambda: f"{fake.word().title()} {fake.word()} {fake.random_int(1, 999)}g",
            names,
        )
        cost = Decimal(random.uniform(1.0, 300.0)).quantize(CENTS)
        price = (cost * Decimal(random.uniform(1.25, 1.9))).quantize(CENTS)
        products.append((sku(name), name, fake.word().title(), "un", price, cost, True))
    insert(
        "products",
        "sku, name, category, unit, price, cost, active",
        products,
        "ON CONFLICT (sku) DO NOTHING",
    )
    del products
    conn.commit()
    cpfs: set[str] = set()
    insert(
        "clients",
        "name, cpf_cnpj, email, phone, address",
        [
            (
                fake.name(),
                unique(fake.cpf, cpfs),
                fake.email(),
                fake.phone_number()[:20],
                fake.address().replace("\n", ", ")[:200],
            )
            for _ in range(profile.count("clients"))
        ],
        "ON CONFLICT (cpf_cnpj) DO NOTHING",
    )
    conn.commit()

    def ids(query: str) -> list:
        cur.execute(query)
        return cur.fetchall()

    suppliers = [r[0] for r in ids("SELECT id FROM suppliers")]
    stores = [r[0] for r in ids("SELECT id FROM stores")]
    clients = [r[0] for r in ids("SELECT id FROM clients")]
    catalogue = ids("SELECT id, price, cost FROM products")

    def items(low: int, high: int) -> list:
        return random.sample(catalogue, random.randint(low, high))

    heads, lines = [], []
    for n in range(profile.count("product_entries")):
        chosen = [(p, random.randint(10, 200)) for p in items(1, 6)]
        total = sum(q * p[2] for p, q in chosen)
        heads.append(
            (random.choice(suppliers), f"NF-{n + 1:09d}",
             fake.date_time_between("-1y", "now"),
             random.choices(["received", "pending", "cancelled"], [95, 3, 2])[0],
             total)
        )  # fmt: skip
        lines.append(chosen)
    new = insert(
        "product_entries",
        "supplier_id, invoice_number, entry_date, status, total_cost",
        heads,
        "RETURNING id",
    )
    insert(
        "product_entry_items",
        "entry_id, product_id, quantity, unit_cost",
        [
            (h, p[0], q, p[2])
            for h, chosen in zip(new, lines, strict=True)
            for p, q in chosen
        ],
    )
    conn.commit()

    heads, lines = [], []
    for _ in range(profile.count("internal_distributions")):
        lines.append([(p, random.randint(5, 100)) for p in items(1, 8)])
        heads.append(
            (random.choice(stores), fake.date_time_between("-1y", "now"),
             random.choices(["received", "in_transit", "pending", "cancelled"],
                            [88, 6, 4, 2])[0])
        )  # fmt: skip
    new = insert(
        "internal_distributions",
        "store_id, distributed_at, status",
        heads,
        "RETURNING id",
    )
    insert(
        "internal_distribution_items",
        "distribution_id, product_id, quantity",
        [(h, p[0], q) for h, chosen in zip(new, lines, strict=True) for p, q in chosen],
    )
    conn.commit()

    heads, lines = [], []
    for _ in range(profile.count("sales")):
        chosen = [(p, random.choices([1, 2, 3, 4, 5], [60, 25, 8, 4, 3])[0])
                  for p in items(1, 5)]  # fmt: skip
        lines.append(chosen)
        heads.append(
            (random.choice(stores), random.choice(clients),
             fake.date_time_between("-1y", "now"),
             random.choices(["completed", "cancelled", "returned"], [92, 5, 3])[0],
             random.choice(["pix", "credit", "debit", "cash", "boleto"]),
             sum(q * p[1] for p, q in chosen))
        )  # fmt: skip
    new = insert(
        "sales",
        "store_id, client_id, sold_at, status, payment_method, total",
        heads,
        "RETURNING id",
    )
    insert(
        "sale_items",
        "sale_id, product_id, quantity, unit_price, subtotal",
        [
            (h, p[0], q, p[1], q * p[1])
            for h, chosen in zip(new, lines, strict=True)
            for p, q in chosen
        ],
    )
    conn.commit()
    conn.close()
    print(rows, f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
