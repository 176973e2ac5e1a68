"""Hypothesis strategies for every table's rows and for CPF, CNPJ, CRM, SKU.

Rows come from the factories' own declarations (no second definition), built
in memory: FK columns hold a :class:`~pytest_oltpseed.factory.Ref` to a built
parent, so a row carries what its rules need and
:meth:`SQLFactory.write <pytest_oltpseed.factory.SQLFactory.write>` can insert
the whole graph. Hypothesis draws the seed, the identifier range and the
"as of" date; shrinking goes towards seed 0 and the default date.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st

from pytest_oltpseed import brazil
from pytest_oltpseed.domains.retail.catalog import CAPACITY, product_at
from pytest_oltpseed.factory import DEFAULT_AS_OF, Context, Row, factory_for

_INDEX_MAX = 10**8 - 1


def cpf() -> st.SearchStrategy[str]:
    """Valid, masked CPFs."""
    return st.integers(0, _INDEX_MAX).map(brazil.cpf)


def cnpj() -> st.SearchStrategy[str]:
    """Valid, masked head-office CNPJs."""
    return st.integers(0, _INDEX_MAX).map(brazil.cnpj)


def crm() -> st.SearchStrategy[str]:
    """CRMs as ``CRM/UF 123456``."""
    return st.integers(0, 10**6 - 1).map(brazil.crm)


def sku() -> st.SearchStrategy[str]:
    """SKUs of catalogue products (derived from the product name)."""
    return st.integers(0, 2 * CAPACITY).map(
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
    """A row of ``table`` with its parents built, as the factories make it."""
    factory = factory_for(table)
    context = Context(
        None,
        seed=draw(st.integers(0, 2**32 - 1)),
        as_of=draw(as_of()),
        index_base=draw(st.integers(0, 10**6)),
        pool_seed=0,  # value pools cost ~50 ms to build: vary the picks, not them
    )
    return factory.make_row(context)
