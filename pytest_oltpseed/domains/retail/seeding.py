"""Retail stage hooks: stock. The warehouse ships only what it received; a
store sells only what it received.

Stock is loaded from the database when the stage starts (so reruns and
databases with earlier data stay consistent), items pick only products with
enough stock for their quantity, and a header whose item finds none becomes
``cancelled`` (cancelled transfers and sales move no stock), which keeps the
profile's exact header counts.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from pytest_oltpseed.data.factory import Ref, Row, ref_id
from pytest_oltpseed.seed.seeder import ParentPool, Picker, Seeder, Stage

TRIES = 40


class Stock:
    """Quantities per key with a list of the keys in stock, for O(1) picks."""

    def __init__(self) -> None:
        self.qty: dict[Any, int] = defaultdict(int)
        self.keys: list[Any] = []
        self._where: dict[Any, int] = {}

    def add(self, key: Any, quantity: int) -> None:
        self.qty[key] += quantity
        if self.qty[key] > 0 and key not in self._where:
            self._where[key] = len(self.keys)
            self.keys.append(key)
        elif self.qty[key] <= 0 and key in self._where:
            i = self._where.pop(key)
            last = self.keys.pop()
            if i < len(self.keys):
                self.keys[i] = last
                self._where[last] = i

    def pick(self, rng: random.Random, quantity: int) -> Any | None:
        for _ in range(TRIES if self.keys else 0):
            key = self.keys[rng.randrange(len(self.keys))]
            if self.qty[key] >= quantity:
                return key
        return None


def _cancel(head: Row, products: ParentPool, rng: random.Random) -> Ref:
    head["status"] = "cancelled"
    return products.ref(rng.randrange(len(products)))


class Transfers:
    """internal_distributions: items only ship what the warehouse holds."""

    def prepare(self, seeder: Seeder, stage: Stage, pickers: dict[str, Picker]) -> int:
        products = seeder.pool("products", ("price", "cost"))
        rng = seeder.ctx.rng
        self.stock = Stock()
        for product_id, quantity in seeder.conn.execute(
            "SELECT product_id, sum(q) FROM ("
            "SELECT i.product_id, i.quantity AS q FROM product_entry_items i "
            "JOIN product_entries e ON e.id = i.entry_id WHERE e.status = 'received' "
            "UNION ALL SELECT i.product_id, -i.quantity FROM "
            "internal_distribution_items i JOIN internal_distributions d "
            "ON d.id = i.distribution_id WHERE d.status <> 'cancelled') x GROUP BY 1"
        ):
            self.stock.add(product_id, int(quantity))

        def product(row: Any) -> Ref:
            head = row.distribution_id.row
            if head["status"] == "cancelled":
                return products.ref(rng.randrange(len(products)))
            found = self.stock.pick(rng, row.quantity)
            return products.ref_for(found) if found else _cancel(head, products, rng)

        pickers["product_id"] = product
        return stage.count

    def accept(self, row: Row) -> None:
        if row["status"] != "cancelled":
            for item in row["items"]:
                self.stock.add(ref_id(item["product_id"]), -item["quantity"])


class Sales:
    """sales: a store sells only what its received transfers brought it."""

    def prepare(self, seeder: Seeder, stage: Stage, pickers: dict[str, Picker]) -> int:
        products = seeder.pool("products", ("price", "cost"))
        stores = seeder.pool("stores", ("opened_at",))
        rng = seeder.ctx.rng
        self.stock: dict[int, Stock] = defaultdict(Stock)
        for store_id, product_id, quantity in seeder.conn.execute(
            "SELECT store_id, product_id, sum(q) FROM ("
            "SELECT d.store_id, i.product_id, i.quantity AS q FROM "
            "internal_distribution_items i JOIN internal_distributions d "
            "ON d.id = i.distribution_id WHERE d.status = 'received' "
            "UNION ALL SELECT s.store_id, i.product_id, -i.quantity FROM sale_items i "
            "JOIN sales s ON s.id = i.sale_id WHERE s.status <> 'cancelled') x "
            "GROUP BY 1, 2"
        ):
            self.stock[store_id].add(product_id, int(quantity))
        stocked = [sid for sid, stock in self.stock.items() if stock.keys]
        any_store = stores.picker(rng)

        def store(_row: Any) -> Ref:
            if not stocked:
                return any_store(_row)
            return stores.ref_for(stocked[rng.randrange(len(stocked))])

        def product(row: Any) -> Ref:
            head = row.sale_id.row
            if head["status"] == "cancelled":
                return products.ref(rng.randrange(len(products)))
            found = self.stock[ref_id(head["store_id"])].pick(rng, row.quantity)
            return products.ref_for(found) if found else _cancel(head, products, rng)

        pickers["store_id"] = store
        pickers["product_id"] = product
        return stage.count

    def accept(self, row: Row) -> None:
        if row["status"] != "cancelled":
            stock = self.stock[ref_id(row["store_id"])]
            for item in row["items"]:
                stock.add(ref_id(item["product_id"]), -item["quantity"])


HOOKS = {"internal_distributions": Transfers, "sales": Sales}
