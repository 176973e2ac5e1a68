"""Drawing values from a context's seeded generator: choices, whole numbers,
names, addresses, e-mails, moments, days, weighted picks; shared by every
domain. A part of :class:`~pytest_oltpseed.data.context.Context`."""

from __future__ import annotations

import random
import unicodedata
from bisect import bisect
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

from pytest_oltpseed.data.pools import Pools


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class Drawing:
    """Context's value helpers (a mixin; ``rng`` and ``pools`` set by ``Context``)."""

    rng: random.Random
    pools: Pools

    # ``random.choice``/``randint`` cost ~0.6 us in pure Python; one C-level
    # ``random()`` and a multiplication draw the same uniform index in ~0.1 us.
    def choice(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.random() * len(options))]

    def randint(self, low: int, high: int) -> int:
        """Uniform integer in [low, high], like ``random.randint``."""
        return low + int(self.rng.random() * (high - low + 1))

    def person_name(self) -> str:
        p, pick = self.pools, self.choice
        return f"{pick(p.first_names)} {pick(p.last_names)} {pick(p.last_names)}"

    def address(self) -> str:
        p, pick = self.pools, self.choice
        city, uf = pick(p.cities)
        return (
            f"{pick(p.streets)}, {self.randint(1, 3999)} - "
            f"{pick(p.bairros)}, {city} - {uf}"
        )[:200]

    def email(self, name: str) -> str:
        parts = _ascii(name).lower().split()
        user = f"{parts[0]}.{parts[-1]}{self.randint(1, 999)}"
        return f"{user}@{self.choice(self.pools.email_domains)}"

    def moment(self, start: datetime, end: datetime) -> datetime:
        """A time uniformly in [start, end], whole seconds (stable round-trips)."""
        span = max(0, int((end - start).total_seconds()))
        return start + timedelta(seconds=self.randint(0, span))

    def day(self, start: date, end: date) -> date:
        return start + timedelta(days=self.randint(0, max(0, (end - start).days)))

    def weighted(self, choices: Mapping[str, float]) -> str:
        """``rng.choices(keys, weights)[0]``, same draw, without rebuilding lists."""
        keys, cumulative, total = _cumulative(choices)
        return keys[bisect(cumulative, self.rng.random() * total, 0, len(keys) - 1)]


_CUMULATIVE: dict[int, tuple[Mapping[str, float], list[str], list[float], float]] = {}


def _cumulative(choices: Mapping[str, float]) -> tuple[list[str], list[float], float]:
    entry = _CUMULATIVE.get(id(choices))
    if entry is None or entry[0] is not choices:
        cumulative = list(accumulate(choices.values()))
        entry = (choices, list(choices), cumulative, cumulative[-1] + 0.0)
        _CUMULATIVE[id(choices)] = entry
    return entry[1], entry[2], entry[3]
