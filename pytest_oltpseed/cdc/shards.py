"""Per-shard breakdown of ``cdc verify`` over merged files.

``oltpseed stream --shard i/K`` names its run ``...-s<i>of<K>`` (its clients
``...-s<i>of<K>.c<n>``), and every batch it commits is tagged in the WAL with
its run id. Merged with ``oltpseed report merge``, the files of K shards are
verified as one run; this module says which shard each transaction and each
difference belongs to, so a shard that lost changes (its host, its network)
is named rather than hidden in the sum.

Expected changes per shard come from the changes file (key by key: missing,
duplicated, extra and reordered changes are attributed to the batch they
belong to), or, with the report only, from the merged report's parts (their
row changes; a difference is then a count: captured fewer or more).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_oltpseed.cdc.changes import RowChange
from pytest_oltpseed.cdc.keys import KeyVerdict, tag_of
from pytest_oltpseed.cdc.pgoutput import Transaction

SHARD_RUN = re.compile(r"-s(\d+)of(\d+)(?:\.c\d+)?$")
NO_SHARD = "-"  # untagged transactions, and runs of no shard


def shard_of(run: str | None) -> str:
    """``"i/K"`` for a shard's run id (or one of its clients'), else ``-``."""
    found = SHARD_RUN.search(run or "")
    return f"{found.group(1)}/{found.group(2)}" if found else NO_SHARD


@dataclass(frozen=True)
class ShardLine:
    """One shard: its runs' batches and row changes, expected against captured."""

    shard: str
    runs: int
    batches_reported: int
    batches_captured: int
    expected: int | None  # None: neither a changes file nor part counts say it
    captured: int  # row changes of watched tables in its tagged transactions
    missing: int | None
    extra: int | None
    duplicate: int = 0
    reordered: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.batches_reported == self.batches_captured
            and not self.missing
            and not self.extra
            and not self.duplicate
            and not self.reordered
            and (self.expected is None or self.expected == self.captured)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "shard", "runs", "batches reported", "batches captured", "expected",
        "captured", "missing", "extra", "duplicated", "reordered",
    )  # fmt: skip

    def cells(self) -> list[str]:
        """The line as text, in :attr:`COLUMNS` order (``-``: not known)."""
        values = (self.runs, self.batches_reported, self.batches_captured,
                  self.expected, self.captured, self.missing, self.extra,
                  self.duplicate, self.reordered)  # fmt: skip
        return [self.shard, *("-" if v is None else f"{v:,}" for v in values)]


def part_rows(report: Mapping[str, Any]) -> dict[str, int]:
    """Run id -> row changes, from a merged report's parts (nested merges too);
    parts written before they carried ``rows`` are left out."""
    found: dict[str, int] = {}
    for part in report.get("parts", ()):
        if "parts" in part:
            found |= part_rows(part)
        elif "rows" in part:
            found[str(part["run_id"])] = int(part["rows"])
    return found


def breakdown(
    transactions: Sequence[Transaction],
    watched: Iterable[str],
    prefix: str,
    *,
    report: Mapping[str, Any] | None = None,
    runs: Mapping[str, int] | None = None,
    expected: Sequence[RowChange] | None = None,
    keys: KeyVerdict | None = None,
) -> list[ShardLine] | None:
    """The per-shard lines, or None when no run is a shard's (nothing to split).

    ``runs`` is run id -> reported batches (the report's); ``expected`` the
    changes file's lines and ``keys`` their verdict; with neither, expected
    row changes come from the ``report``'s parts."""
    known = dict(runs or {})
    if runs is None:  # no report: the changes file's batches are the reported
        seen = {(line.run, line.batch) for line in expected or ()}
        known = Counter(run for run, _ in seen)
    if all(shard_of(run) == NO_SHARD for run in known):
        return None
    tables = set(watched)
    captured: Counter[str] = Counter()
    batches: dict[str, set[tuple[str, int]]] = {}
    for tx in transactions:
        tag = tag_of(tx, prefix)
        shard = shard_of(tag[0]) if tag and tag[0] in known else NO_SHARD
        if tag and tag[0] in known:
            batches.setdefault(shard, set()).add(tag)
        captured[shard] += sum(1 for c in tx.changes if c.table in tables)
    want: Counter[str] | None = None
    if expected is not None:
        want = Counter(shard_of(line.run) for line in expected)
    elif report is not None:
        rows = part_rows(report)
        if known and set(known) <= set(rows):
            want = Counter()
            for run in known:
                want[shard_of(run)] += rows[run]
    issues: dict[str, Counter[str]] = {}
    for tagged, kinds in (keys.by_run if keys is not None else {}).items():
        issues.setdefault(shard_of(tagged), Counter()).update(kinds)
    reported: Counter[str] = Counter()
    members: Counter[str] = Counter()
    for run, n in known.items():
        reported[shard_of(run)] += n
        members[shard_of(run)] += 1
    shards = sorted(
        set(members) | set(captured) | set(issues),
        key=lambda s: (
            s == NO_SHARD,
            [int(x) for x in s.split("/")] if "/" in s else [],
        ),
    )
    lines = []
    for shard in shards:
        if shard == NO_SHARD and not captured[shard] and not issues.get(shard):
            continue
        mine = issues.get(shard, Counter())
        expect = want[shard] if want is not None else None
        if keys is not None:
            missing: int | None = mine["missing"]
            extra: int | None = mine["extra"]
        elif expect is not None:
            missing = max(0, expect - captured[shard])
            extra = max(0, captured[shard] - expect)
        else:
            missing = extra = None
        lines.append(
            ShardLine(
                shard=shard,
                runs=members[shard],
                batches_reported=reported[shard],
                batches_captured=len(batches.get(shard, ())),
                expected=expect,
                captured=captured[shard],
                missing=missing,
                extra=extra,
                duplicate=mine["duplicate"],
                reordered=mine["reordered"],
            )
        )
    return lines
