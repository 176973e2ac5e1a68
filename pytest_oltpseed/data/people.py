"""Column generators for people and places, shared by the domains.

Each is one declaration (see :mod:`.columns`) used per object and column-wise:
a pt_BR name, a Brazilian phone, a street address.
"""

from __future__ import annotations

from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.columns import Chance, Choice, Int, Join, PoolChoice

NAME = Join(
    PoolChoice("first_names"), " ", PoolChoice("last_names"), " ",
    PoolChoice("last_names"),
)  # fmt: skip
PHONE = Join(
    "(",
    Choice([str(ddd) for ddd in brazil.DDDS]),
    ") ",
    Chance(0.8, Join("9", Int(6000, 9999)), Int(2000, 5999)),
    "-",
    Int(0, 9999, 4),
)  # fmt: skip  (mobile four times in five, like brazil.phone)
ADDRESS = Join(
    PoolChoice("streets"), ", ", Int(1, 3999), " - ", PoolChoice("bairros"), ", ",
    PoolChoice("cities", show=lambda c: f"{c[0]} - {c[1]}"), limit=200,
)  # fmt: skip
