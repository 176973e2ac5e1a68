"""Realistic pt_BR value pools, drawn once per seed from Faker, then picked from.

Faker costs 5-15 us a call; a pick from a pool built once costs well under
1 us, and the pools are shared by every context of one seed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, lru_cache

from faker import Faker

POOL_SIZES = (
    ("first_names", "first_name", 400),
    ("last_names", "last_name", 200),
    ("streets", "street_name", 800),
    ("bairros", "bairro", 300),
)
"""The Faker-built pools (name, Faker method, size), in the one order they are
drawn (see :class:`Pools`)."""


class Pools:
    """Realistic pt_BR values drawn once from a seeded Faker, then picked from.

    The pools are drawn in one fixed order (:data:`POOL_SIZES`), all at once:
    drawn lazily, each pool's values depended on which pool a process touched
    first, so one table's rows depended on the tables generated before it in
    the same process, and a pool first drawn in a forked worker differed from
    the one the parent process drew (a generated domain's addresses seeded
    with and without workers).
    """

    def __init__(self, seed: int) -> None:
        self.faker = Faker("pt_BR")
        self.faker.seed_instance(seed)
        self.first_names, self.last_names, self.streets, self.bairros = (
            self._unique(getattr(self.faker, method), size)
            for _, method, size in POOL_SIZES
        )

    def _unique(self, make: Callable[[], str], size: int) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for _ in range(size * 3):
            seen.setdefault(make(), None)
            if len(seen) >= size:
                break
        return tuple(seen)

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


@lru_cache(maxsize=8)
def pools(seed: int) -> Pools:
    """Pools are immutable once built: share them between contexts of one seed."""
    return Pools(seed)
