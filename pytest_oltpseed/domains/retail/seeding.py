"""Retail stage rules: stock. The warehouse ships only what it received; a
store sells only what it received.

Stock is read from the database when the stage starts (so reruns and
databases with earlier data stay consistent). Items pick their product among
what is in stock (a sale's store among the stores holding any), then each
item is granted what remains of its want, in row order: with ``Q`` an item's
cumulative want for its stock key and ``S`` the key's stock, the grant is
``min(Q, S) - min(Q - want, S)``, which is the one-at-a-time greedy result
computed for a whole chunk with one sort and one cumulative sum. An item
granted nothing is dropped; a header none of whose items got anything becomes
``cancelled`` (cancelled transfers and sales move no stock), which keeps the
profile's exact header counts.
"""

from __future__ import annotations

from typing import Any

from pytest_oltpseed.data import columns
from pytest_oltpseed.domains.retail.factories import PRODUCT_CARRY
from pytest_oltpseed.seed import chunks
from pytest_oltpseed.seed.seeder import Seeder, Stage

WAREHOUSE = (
    "SELECT NULL::bigint, product_id, sum(q) FROM ("
    "SELECT i.product_id, i.quantity AS q FROM product_entry_items i "
    "JOIN product_entries e ON e.id = i.entry_id WHERE e.status = 'received' "
    "UNION ALL SELECT i.product_id, -i.quantity FROM "
    "internal_distribution_items i JOIN internal_distributions d "
    "ON d.id = i.distribution_id WHERE d.status <> 'cancelled') x "
    "GROUP BY product_id HAVING sum(q) > 0 ORDER BY product_id"
)
SHELVES = (
    "SELECT store_id, product_id, sum(q) FROM ("
    "SELECT d.store_id, i.product_id, i.quantity AS q FROM "
    "internal_distribution_items i JOIN internal_distributions d "
    "ON d.id = i.distribution_id WHERE d.status = 'received' "
    "UNION ALL SELECT s.store_id, i.product_id, -i.quantity FROM sale_items i "
    "JOIN sales s ON s.id = i.sale_id WHERE s.status <> 'cancelled') x "
    "GROUP BY store_id, product_id HAVING sum(q) > 0 ORDER BY store_id, product_id"
)


class Stock:
    """Stock keys (a product in the warehouse, or a (store, product) pair),
    grouped by the header's parent when the rule picks one (the store)."""

    items = "items"
    item_fk = "product_id"
    quantity = "quantity"
    status = "status"
    cancelled = "cancelled"
    header_fk: str | None = None
    query = WAREHOUSE
    header_table = ""
    header_carry: tuple[str, ...] = ()

    def load(self, seeder: Seeder, stage: Stage, fast: bool) -> None:
        products = seeder.pool("products", PRODUCT_CARRY)
        chunks._require(products)  # one clear line, not an IndexError
        self.products = len(products)
        product_at = {pid: i for i, pid in enumerate(products.ids)}
        groups = 1
        group_at: dict[Any, int] = {None: 0}
        if self.header_fk:
            heads = seeder.pool(self.header_table, self.header_carry)
            chunks._require(heads)
            groups = self.heads = len(heads)
            group_at = {hid: i for i, hid in enumerate(heads.ids)}
        product, group, stock = [], [], []
        for head_id, product_id, quantity in seeder.conn.execute(self.query):
            group.append(group_at[head_id])
            product.append(product_at[product_id])
            stock.append(int(quantity))
        start, size = [0] * groups, [0] * groups
        for k, g in enumerate(group):  # keys come ordered by group
            if not size[g]:
                start[g] = k
            size[g] += 1
        self.stocked = [g for g in range(groups) if size[g]]
        stock.append(0)  # key -1: nothing in stock
        if fast:
            np = columns.np
            self.product = np.array(product, dtype=np.int64)
            self.start = np.array(start, dtype=np.int64)
            self.size = np.array(size, dtype=np.int64)
            self.left = np.array(stock, dtype=np.int64)
            self.stocked_array = np.array(self.stocked, dtype=np.int64)
        else:
            self.product, self.start, self.size, self.left = product, start, size, stock

    def pick_headers(self, us: Any, fast: bool) -> Any:
        """Among the stocked groups (stores); any of them when none is."""
        if fast:
            if not self.stocked:
                return columns.picks(us, self.heads)
            return self.stocked_array[columns.picks(us, len(self.stocked))]
        if not self.stocked:
            return [columns.pick(u, self.heads) for u in us]
        return [self.stocked[columns.pick(u, len(self.stocked))] for u in us]

    def pick_items(self, us: Any, groups: Any, fast: bool) -> tuple[Any, Any]:
        """A stocked key of the item's group, uniformly (key -1 and any
        product when the group holds nothing)."""
        if fast:
            np = columns.np
            g = groups if groups is not None else np.zeros(len(us), dtype=np.int64)
            size = self.size[g]
            keys = self.start[g] + (us * size.astype(np.float64)).astype(np.int64)
            keys[size == 0] = -1
            anything = columns.picks(us, self.products)
            product = np.where(keys >= 0, self.product[np.maximum(keys, 0)], anything)
            return product, keys
        keys, product = [], []
        for i, u in enumerate(us):
            g = groups[i] if groups is not None else 0
            if self.size[g]:
                k = self.start[g] + columns.pick(u, self.size[g])
                keys.append(k)
                product.append(self.product[k])
            else:
                keys.append(-1)
                product.append(columns.pick(u, self.products))
        return product, keys

    def allocate(self, keys: Any, wanted: Any, fast: bool) -> Any:
        """What each item gets, in order: ``min(Q, S) - min(Q - want, S)``."""
        if not fast:
            granted = []
            for k, want in zip(keys, wanted, strict=True):
                got = min(want, self.left[k])
                self.left[k] -= got
                granted.append(got)
            self.left[-1] = 0
            return granted
        np = columns.np
        if not len(keys):
            return wanted[:0]
        order = np.argsort(keys, kind="stable")
        k, q = keys[order], wanted[order]
        total = np.cumsum(q)
        first = np.ones(len(k), dtype=bool)
        first[1:] = k[1:] != k[:-1]
        before = (total - q)[first][np.cumsum(first) - 1]  # want of earlier groups
        mine = total - before  # Q: cumulative want within the key
        have = self.left[k]
        got = np.minimum(mine, have) - np.minimum(mine - q, have)
        granted = np.empty_like(got)
        granted[order] = got
        np.subtract.at(self.left, k, got)
        self.left[-1] = 0
        return granted


class Warehouse(Stock):
    """internal_distributions: items only ship what the warehouse holds."""


class Shelves(Stock):
    """sales: a store sells only what its received transfers brought it."""

    header_fk = "store_id"
    header_table = "stores"
    header_carry = ("opened_at",)
    query = SHELVES


HOOKS = {"internal_distributions": Warehouse, "sales": Shelves}
