"""Which factory makes which table: factories register themselves by table and
domain; domains' factory modules load on first need."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_oltpseed.errors import OltpseedError

if TYPE_CHECKING:
    from pytest_oltpseed.data.sqlfactory import SQLFactory

_FACTORIES: dict[str, dict[str, type[SQLFactory]]] = {}
"""table -> domain -> factory: two domains may name a table alike."""


def factory_for(table: str) -> type[SQLFactory]:
    """The factory of ``table`` (domains' factory modules load on first need).

    When several registered domains have a table of that name, the one among
    the domains in use (:func:`pytest_oltpseed.domains.active`) decides.
    """
    from pytest_oltpseed.domains import active, registry

    mine = active()
    known = _FACTORIES.get(table, {})
    if not known or (mine and not mine.intersection(known)):
        # The domains in use first: seeding one domain imports no other's
        # factories. Every domain's only for a table none of them makes.
        domains = registry()
        for name in sorted(mine.intersection(domains)):
            domains[name].load_factories()
        if not mine.intersection(_FACTORIES.get(table, {})):
            for domain in domains.values():
                domain.load_factories()
    found = _FACTORIES.get(table, {})
    if len(found) == 1:
        return next(iter(found.values()))
    chosen = [f for name, f in found.items() if name in active()]
    if len(chosen) == 1:
        return chosen[0]
    if not found:
        raise OltpseedError(f"no factory for table {table!r}")
    raise OltpseedError(
        f"table {table!r} belongs to domains {', '.join(sorted(found))}: "
        "select one of them with --domain"
    )


def all_factories() -> dict[str, type[SQLFactory]]:
    """Every domain's factories by class name (``Paciente``, ``Sale``, ...);
    on a clash of names, the factory of a domain in use wins."""
    from pytest_oltpseed.domains import active, registry

    for domain in registry().values():
        domain.load_factories()
    every = [f for by_domain in _FACTORIES.values() for f in by_domain.values()]
    mine = active()
    ordered = sorted(every, key=lambda f: f._domain in mine)
    return {f.__name__: f for f in ordered}
