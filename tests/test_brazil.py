"""Identifiers: valid check digits, masks, bijective generators, SKU derivation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_oltpseed.data import brazil
from pytest_oltpseed.domains.retail.catalog import CAPACITY, product_at


@pytest.mark.parametrize("value", ["529.982.247-25", "52998224725", "111.444.777-35"])
def test_known_valid_cpfs(value: str) -> None:
    assert brazil.is_valid_cpf(value)


@pytest.mark.parametrize(
    "value",
    [
        "529.982.247-24",
        "111.111.111-11",
        "000.000.000-00",
        "5299822472",
        "529.982.247_25",
        "",
    ],
)
def test_invalid_cpfs(value: str) -> None:
    assert not brazil.is_valid_cpf(value)


@pytest.mark.parametrize(
    "value", ["11.222.333/0001-81", "11222333000181", "00.000.000/0001-91"]
)
def test_known_valid_cnpjs(value: str) -> None:
    assert brazil.is_valid_cnpj(value)


@pytest.mark.parametrize(
    "value", ["11.222.333/0001-80", "00.000.000/0000-00", "11.222.333/0001"]
)
def test_invalid_cnpjs(value: str) -> None:
    assert not brazil.is_valid_cnpj(value)


def test_generators_are_injective_and_valid() -> None:
    cpfs = [brazil.cpf(n) for n in range(50_000)]
    cnpjs = [brazil.cnpj(n) for n in range(50_000)]
    crms = [brazil.crm(n) for n in range(50_000)]
    assert len(set(cpfs)) == len(set(cnpjs)) == len(set(crms)) == 50_000
    assert all(map(brazil.is_valid_cpf, cpfs))
    assert all(map(brazil.is_valid_cnpj, cnpjs))
    assert all(map(brazil.is_valid_crm, crms))
    assert "00.000.000/0001-91" not in cnpjs and "11.111.111/0001-91" not in cnpjs


@given(st.integers(0, 10**9 - 1))
def test_cpf_any_index(n: int) -> None:
    value = brazil.cpf(n)
    assert brazil.is_valid_cpf(value)
    assert brazil.mask_cpf(brazil.unmask(value)) == value


def test_index_out_of_space() -> None:
    with pytest.raises(ValueError, match="outside"):
        brazil.cpf(10**9)


def test_phones() -> None:
    rng = random.Random(3)
    numbers = [brazil.phone(rng.random) for _ in range(2000)]
    assert all(map(brazil.is_valid_phone, numbers))
    mobile = sum(len(brazil.unmask(n)) == 11 for n in numbers) / len(numbers)
    assert 0.75 < mobile < 0.85
    assert not brazil.is_valid_phone("(00) 91234-5678")


def test_sku_is_deterministic_and_unique_over_catalogue() -> None:
    assert brazil.sku("Arroz Camil 5kg", "ALI") == brazil.sku(" arroz camil 5kg", "ali")
    names = [product_at(n)[1] for n in range(CAPACITY + 500)]
    assert len(set(names)) == len(names)  # names unique, even past the combinations
    skus = {brazil.sku(name) for name in names}
    assert len(skus) == len(names)
    assert brazil.is_valid_sku(brazil.sku(names[0], "ALI"), names[0])
    assert not brazil.is_valid_sku(brazil.sku(names[0], "ALI"), names[1])
