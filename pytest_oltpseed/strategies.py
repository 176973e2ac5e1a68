"""Hypothesis strategies for every table's rows and for CPF, CNPJ, CRM, SKU.

Rows come from the factories' own declarations (no second definition), built
in memory: FK columns hold a :class:`~pytest_oltpseed.data.factory.Ref` to a built
parent, so a row carries what its rules need and
:meth:`SQLFactory.write <pytest_oltpseed.data.factory.SQLFactory.write>` can insert
the whole graph. Hypothesis draws the seed, the identifier range and the
"as of" date; shrinking goes towards seed 0 and the default date.

Identifiers (CPF, CNPJ, CRM, SKU, store codes, ...) are drawn from indices at
:data:`FREE_INDEX` and above, a range the seeder never uses (it numbers each
key from 0, at most STRESS's 200,000 rows of a table, and the stream continues
from there), so a strategy row can be inserted next to seeded data.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st

from pytest_oltpseed.data import brazil
from pytest_oltpseed.data.factory import DEFAULT_AS_OF, Context, Row, factory_for
from pytest_oltpseed.domains.retail.catalog import product_at

FREE_INDEX = 10_000_000
"""First identifier index the seeder never uses; strategies draw from here up
(the CRM space, the smallest, holds 27 million)."""
_FREE_SPAN = 10**6


def _free_index() -> st.SearchStrategy[int]:
    return st.integers(FREE_INDEX, FREE_INDEX + _FREE_SPAN)


def cpf() -> st.SearchStrategy[str]:
    """Valid, masked CPFs that no seeded row holds."""
    return _free_index().map(brazil.cpf)


def cnpj() -> st.SearchStrategy[str]:
    """Valid, masked head-office CNPJs that no seeded row holds."""
    return _free_index().map(brazil.cnpj)


def crm() -> st.SearchStrategy[str]:
    """CRMs as ``CRM/UF 123456`` that no seeded row holds."""
    return _free_index().map(brazil.crm)


def sku() -> st.SearchStrategy[str]:
    """SKUs of catalogue products (derived from the product name) that no
    seeded product holds."""
    return _free_index().map(
        lambda n: brazil.sku(product_at(n)[1], product_at(n)[0].prefix)
    )


def phone() -> st.SearchStrategy[str]:
    """Brazilian phone numbers, ``(DD) 9XXXX-XXXX`` or ``(DD) XXXX-XXXX``."""
    return st.randoms(use_true_random=False).map(lambda rng: brazil.phone(rng.random))


def as_of() -> st.SearchStrategy[datetime]:
    """Plausible "now" instants for generated data."""
    return st.datetimes(
        min_value=datetime(2005, 1, 1), max_value=datetime(2035, 1, 1)
    ).map(lambda d: d.replace(microsecond=0)) | st.just(DEFAULT_AS_OF)


@st.composite
def rows(draw: st.DrawFn, table: str) -> Row:
    """A row of ``table`` with its parents built, as the factories make it.

    Any registered domain's table: a built-in one, or one of a domain found
    through the entry points or the domain path (``oltpseed introspect``'s
    included, whose parents are built in memory too; name it
    ``schema.table`` outside ``public``).
    """
    factory = factory_for(table)
    context = Context(
        None,
        seed=draw(st.integers(0, 2**32 - 1)),
        as_of=draw(as_of()),
        index_base=draw(_free_index()),
        pool_seed=0,  # value pools cost ~50 ms to build: vary the picks, not them
        offline=True,  # no database: every parent is built, none looked up
    )
    return factory.make_row(context)
