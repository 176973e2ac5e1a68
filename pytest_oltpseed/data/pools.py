"""Realistic pt_BR value pools, drawn once per seed from Faker, then picked from.

Faker costs 5-15 us a call; a pick from a pool built once costs well under
1 us, and the pools are shared by every context of one seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path

POOL_SIZES = (
    ("first_names", "first_name", 400),
    ("last_names", "last_name", 200),
    ("streets", "street_name", 800),
    ("bairros", "bairro", 300),
)
"""The Faker-built pools (name, Faker method, size), in the one order they are
drawn (see :class:`Pools`)."""
POOLS_FORMAT = 1  # bump when the pools' construction changes


class Pools:
    """Realistic pt_BR values drawn once from a seeded Faker, then picked from.

    The pools are drawn in one fixed order (:data:`POOL_SIZES`), all at once:
    drawn lazily, each pool's values depended on which pool a run touched
    first (retail's suppliers or hospital's doctors), so one table's rows
    depended on the other domains seeded before it in the same process.

    Making them costs ~0.1 s of Faker (its pt_BR locale, then ~1,700 calls):
    they are kept on disk under the oltpseed home (:func:`pools_cache`), keyed
    by Faker's version, the seed and :data:`POOLS_FORMAT`, and read back in
    well under a millisecond on the next start.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        values = _read_pools(seed)
        if values is None:
            values = self._draw()
            _write_pools(seed, values)
        self.first_names, self.last_names, self.streets, self.bairros = (
            values[name] for name, _, _ in POOL_SIZES
        )

    def _draw(self) -> dict[str, tuple[str, ...]]:
        from faker import Faker

        faker = Faker("pt_BR")
        faker.seed_instance(self.seed)
        return {
            name: _unique(getattr(faker, method), size)
            for name, method, size in POOL_SIZES
        }

    cities: tuple[tuple[str, str], ...] = (
        ("São Paulo", "SP"), ("Rio de Janeiro", "RJ"), ("Belo Horizonte", "MG"),
        ("Salvador", "BA"), ("Fortaleza", "CE"), ("Brasília", "DF"),
        ("Curitiba", "PR"), ("Recife", "PE"), ("Porto Alegre", "RS"),
        ("Manaus", "AM"), ("Belém", "PA"), ("Goiânia", "GO"), ("Campinas", "SP"),
        ("São Luís", "MA"), ("Maceió", "AL"), ("Natal", "RN"), ("Teresina", "PI"),
        ("João Pessoa", "PB"), ("Campo Grande", "MS"), ("Cuiabá", "MT"),
        ("Florianópolis", "SC"), ("Vitória", "ES"), ("Aracaju", "SE"),
        ("Porto Velho", "RO"), ("Macapá", "AP"), ("Boa Vista", "RR"),
        ("Rio Branco", "AC"), ("Palmas", "TO"), ("Guarulhos", "SP"),
        ("São Gonçalo", "RJ"), ("Duque de Caxias", "RJ"), ("Nova Iguaçu", "RJ"),
        ("Santo André", "SP"), ("Osasco", "SP"), ("Ribeirão Preto", "SP"),
        ("Sorocaba", "SP"), ("Uberlândia", "MG"), ("Contagem", "MG"),
        ("Juiz de Fora", "MG"), ("Joinville", "SC"), ("Londrina", "PR"),
        ("Caxias do Sul", "RS"), ("Feira de Santana", "BA"), ("Niterói", "RJ"),
        ("Santos", "SP"), ("Jaboatão dos Guararapes", "PE"), ("Olinda", "PE"),
        ("Campina Grande", "PB"), ("Maringá", "PR"), ("Blumenau", "SC"),
    )  # fmt: skip

    @cached_property
    def email_domains(self) -> tuple[str, ...]:
        return ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br",
                "uol.com.br", "bol.com.br", "terra.com.br", "icloud.com")  # fmt: skip


def _unique(make: Callable[[], str], size: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _ in range(size * 3):
        seen.setdefault(make(), None)
        if len(seen) >= size:
            break
    return tuple(seen)


def pools_cache() -> Path | None:
    """Where drawn pools are kept: ``$OLTPSEED_HOME/cache`` when the home is
    set, else the user's cache directory (``$XDG_CACHE_HOME/oltpseed``); None
    for an account with no home (a container's bare uid): no cache, no error."""
    home = os.environ.get("OLTPSEED_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except (RuntimeError, KeyError):
        return None
    return Path(base) / "oltpseed"


def _pools_file(seed: int) -> Path | None:
    import faker  # already loaded by factory_boy

    cache = pools_cache()
    name = f"pools-faker{faker.VERSION}-v{POOLS_FORMAT}-seed{seed}.json"
    return cache / name if cache is not None else None


def _read_pools(seed: int) -> dict[str, tuple[str, ...]] | None:
    """The cached pools of ``seed``; None when absent or not as written."""
    path = _pools_file(seed)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        values = {name: tuple(data[name]) for name, _, _ in POOL_SIZES}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = all(
        0 < len(pool) <= size and all(type(v) is str for v in pool)
        for (_, _, size), pool in zip(POOL_SIZES, values.values(), strict=True)
    )
    return values if ok else None


def _write_pools(seed: int, values: dict[str, tuple[str, ...]]) -> None:
    """Keep the pools for the next start; a cache that cannot be written is
    only slower, never an error (renamed into place: readers never see half)."""
    target = _pools_file(seed)
    if target is None:
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".pools-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle, ensure_ascii=False)
        os.replace(temp, target)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(temp)


@lru_cache(maxsize=8)
def pools(seed: int) -> Pools:
    """Pools are immutable once built: share them between contexts of one seed."""
    return Pools(seed)
