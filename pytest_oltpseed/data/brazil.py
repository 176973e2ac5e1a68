"""Brazilian identifiers as pure functions: CPF, CNPJ, CRM, phone numbers, SKU.

Generators take an *index* rather than a random number: ``cpf(n)`` is a
bijection from indices onto valid CPFs, so a run that hands out indices from a
sequence gets unique identifiers by construction, never by retrying.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

UFS: tuple[str, ...] = (
    "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT",
    "PA", "PB", "PE", "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP",
    "TO",
)  # fmt: skip
# Area codes in use (ANATEL), the busiest first so choices can be weighted.
DDDS: tuple[int, ...] = (
    11, 21, 31, 41, 51, 61, 71, 81, 85, 19, 27, 47, 48, 62, 91, 92, 12, 13, 14,
    15, 16, 17, 18, 22, 24, 32, 33, 34, 35, 37, 38, 42, 43, 44, 45, 46, 49, 53,
    54, 55, 63, 64, 65, 66, 67, 68, 69, 73, 74, 75, 77, 79, 82, 83, 84, 86, 87,
    88, 89, 93, 94, 95, 96, 97, 98, 99,
)  # fmt: skip

_CPF_SPACE = 10**9  # 9 base digits
_CNPJ_SPACE = 10**8  # 8 root digits; the branch is always 0001 (head office)
_CRM_SPACE = 10**6
# Multipliers coprime with 10: n -> (a*n + b) mod 10^k is then a bijection that
# scatters consecutive indices across the whole space.
_CPF_A, _CPF_B = 387_420_489, 104_729_113
_CNPJ_A, _CNPJ_B = 48_828_127, 31_415_927
_CRM_A, _CRM_B = 524_287, 271_828


def _check_digit(digits: list[int], weights: tuple[int, ...]) -> int:
    remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


_CPF_W1 = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_CPF_W2 = (11, 10, 9, 8, 7, 6, 5, 4, 3, 2)


def cpf_check_digits(base: str) -> str:
    """The two verification digits of a 9-digit CPF base."""
    digits = [int(c) for c in base]
    first = _check_digit(digits, _CPF_W1)
    second = _check_digit([*digits, first], _CPF_W2)
    return f"{first}{second}"


_CNPJ_W1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_W2 = (6, *_CNPJ_W1)


def cnpj_check_digits(base: str) -> str:
    """The two verification digits of a 12-digit CNPJ base (root + branch)."""
    digits = [int(c) for c in base]
    first = _check_digit(digits, _CNPJ_W1)
    second = _check_digit([*digits, first], _CNPJ_W2)
    return f"{first}{second}"


def _chunk_tables(weights: tuple[int, ...]) -> list[list[int]]:
    """Weighted digit sums of every 3-digit chunk at each chunk position.

    Generators sum four table entries instead of weighting each digit: the
    check digits of a CPF cost a few lookups, not a dozen multiplications.
    Built from the digits' products directly: per string digit it cost ~30 ms
    of every start-up.
    """
    tables = []
    for k in range(len(weights) // 3):
        w0, w1, w2 = weights[3 * k : 3 * k + 3]
        tables.append(
            [
                w0 * a + w1 * b + w2 * c
                for a in range(10)
                for b in range(10)
                for c in range(10)
            ]
        )
    return tables


_CPF_T1 = _chunk_tables(_CPF_W1)
_CPF_T2 = _chunk_tables(_CPF_W2[:9])
_CNPJ_T1 = _chunk_tables(_CNPJ_W1)
_CNPJ_T2 = _chunk_tables(_CNPJ_W2[:12])


def _digit(total: int) -> int:
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def _fast_digits(
    value: int, t1: list[list[int]], t2: list[list[int]], last_weight: int
) -> tuple[int, int]:
    chunks = []
    for _ in t1:
        value, chunk = divmod(value, 1000)
        chunks.append(chunk)
    chunks.reverse()
    first = _digit(sum(t[c] for t, c in zip(t1, chunks, strict=True)))
    second = _digit(
        sum(t[c] for t, c in zip(t2, chunks, strict=True)) + last_weight * first
    )
    return first, second


def unmask(value: str) -> str:
    """Digits only."""
    return re.sub(r"\D", "", value)


def mask_cpf(digits: str) -> str:
    d = unmask(digits)
    return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"


def mask_cnpj(digits: str) -> str:
    d = unmask(digits)
    return f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{d[12:]}"


def _walk(n: int, a: int, b: int, space: int, bad: frozenset[int]) -> int:
    if not 0 <= n < space:
        raise ValueError(f"index {n} outside 0..{space - 1}")
    value = (a * n + b) % space
    while value in bad:  # cycle-walking keeps the map injective
        value = (a * value + b) % space
    return value


_REPDIGIT_CPF = frozenset(int(str(d) * 9) for d in range(10))


def cpf(n: int) -> str:
    """The ``n``-th CPF (masked), distinct for distinct ``n``."""
    base = _walk(n, _CPF_A, _CPF_B, _CPF_SPACE, _REPDIGIT_CPF)
    first, second = _fast_digits(base, _CPF_T1, _CPF_T2, 2)
    d = f"{base:09d}"
    return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{first}{second}"


def cpf_many(ns: Any) -> Any:
    """:func:`cpf` over a NumPy array of indices (an object array of str).

    The same affine walk and check digits, computed over whole columns.
    """
    import numpy as np

    base = _walk_many(ns, _CPF_A, _CPF_B, _CPF_SPACE, _REPDIGIT_CPF)
    powers = 10 ** np.arange(8, -1, -1, dtype=np.int64)
    digits = (base[:, None] // powers) % 10  # (n, 9), most significant first
    first = _digits_of(digits @ np.array(_CPF_W1, dtype=np.int64))
    second = _digits_of(digits @ np.array(_CPF_W2[:9], dtype=np.int64) + 2 * first)
    text = np.empty((len(base), 14), dtype=np.uint8)
    text[:, [0, 1, 2, 4, 5, 6, 8, 9, 10]] = 48 + digits
    text[:, 3] = text[:, 7] = ord(".")
    text[:, 11] = ord("-")
    text[:, 12] = 48 + first
    text[:, 13] = 48 + second
    return text.view("S14").ravel().astype("U14").astype(object)


def _walk_many(ns: Any, a: int, b: int, space: int, reserved: frozenset[int]) -> Any:
    """:func:`_walk` over a NumPy array of indices (cycle-walking the
    reserved values the same way, so both give the same numbers)."""
    import numpy as np

    if ns.size and (int(ns.min()) < 0 or int(ns.max()) >= space):
        raise ValueError(f"index outside 0..{space - 1}")
    banned = np.array(sorted(reserved), dtype=np.int64)
    out = (a * ns.astype(np.int64) + b) % space
    bad = np.isin(out, banned)
    while bad.any():
        out[bad] = (a * out[bad] + b) % space
        bad = np.isin(out, banned)
    return out


def _digits_of(totals: Any) -> Any:
    remainder = totals % 11
    return (remainder >= 2) * (11 - remainder)


# Roots of the spec's lookup convênios (00.000.000, 11.111.111) stay unused.
_RESERVED_CNPJ = frozenset({0, 11_111_111})


def cnpj(n: int) -> str:
    """The ``n``-th head-office CNPJ (masked), distinct for distinct ``n``."""
    base = _walk(n, _CNPJ_A, _CNPJ_B, _CNPJ_SPACE, _RESERVED_CNPJ) * 10_000 + 1
    first, second = _fast_digits(base, _CNPJ_T1, _CNPJ_T2, 2)
    d = f"{base:012d}"
    return f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{first}{second}"


def cnpj_many(ns: Any) -> Any:
    """:func:`cnpj` over a NumPy array of indices (an object array of str)."""
    import numpy as np

    root = _walk_many(ns, _CNPJ_A, _CNPJ_B, _CNPJ_SPACE, _RESERVED_CNPJ)
    base = root * 10_000 + 1
    powers = 10 ** np.arange(11, -1, -1, dtype=np.int64)
    digits = (base[:, None] // powers) % 10  # (n, 12), most significant first
    first = _digits_of(digits @ np.array(_CNPJ_W1, dtype=np.int64))
    second = _digits_of(digits @ np.array(_CNPJ_W2[:12], dtype=np.int64) + 2 * first)
    text = np.empty((len(base), 18), dtype=np.uint8)
    text[:, [0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14]] = 48 + digits
    text[:, 2] = text[:, 6] = ord(".")
    text[:, 10] = ord("/")
    text[:, 15] = ord("-")
    text[:, 16] = 48 + first
    text[:, 17] = 48 + second
    return text.view("S18").ravel().astype("U18").astype(object)


def crm(n: int) -> str:
    """The ``n``-th CRM, ``CRM/UF 123456``, distinct for distinct ``n``."""
    number = _walk(n % _CRM_SPACE, _CRM_A, _CRM_B, _CRM_SPACE, frozenset({0}))
    uf = UFS[(n // _CRM_SPACE + n) % len(UFS)]
    if n >= _CRM_SPACE * len(UFS):
        raise ValueError(f"index {n} outside the CRM space")
    return f"CRM/{uf} {number:06d}"


def crm_many(ns: Any) -> Any:
    """:func:`crm` over a NumPy array of indices (an object array of str)."""
    import numpy as np

    ns = ns.astype(np.int64)
    if ns.size and int(ns.max()) >= _CRM_SPACE * len(UFS):
        raise ValueError(f"index {int(ns.max())} outside the CRM space")
    number = _walk_many(ns % _CRM_SPACE, _CRM_A, _CRM_B, _CRM_SPACE, frozenset({0}))
    ufs = np.array([f"CRM/{uf} " for uf in UFS], dtype=object)
    digits = np.char.zfill(number.astype("U6"), 6).astype(object)
    return ufs[(ns // _CRM_SPACE + ns) % len(UFS)] + digits


def is_valid_cpf(value: str) -> bool:
    """Check digits right, 11 digits, not a repeated digit; masked or bare."""
    if not re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}|\d{11}", value):
        return False
    d = unmask(value)
    return len(set(d)) > 1 and cpf_check_digits(d[:9]) == d[9:]


def is_valid_cnpj(value: str) -> bool:
    """Check digits right, 14 digits, not all zeros; masked or bare."""
    if not re.fullmatch(r"\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}|\d{14}", value):
        return False
    d = unmask(value)
    return len(set(d)) > 1 and cnpj_check_digits(d[:12]) == d[12:]


_CRM_RE = re.compile(r"CRM/(?P<uf>[A-Z]{2}) (?P<number>\d{4,6})")


def is_valid_crm(value: str) -> bool:
    match = _CRM_RE.fullmatch(value)
    return bool(match) and match["uf"] in UFS  # type: ignore[index]


def phone(random: Callable[[], float]) -> str:
    """A Brazilian number, mobile (9 digits) four times in five, else landline.

    Takes ``rng.random`` (a function returning floats in [0, 1)): one C call
    per draw instead of ``randint``'s pure-Python path.
    """
    ddd = DDDS[int(random() * len(DDDS))]
    line = int(random() * 10_000)
    if random() < 0.8:
        return f"({ddd}) 9{6000 + int(random() * 4000)}-{line:04d}"
    return f"({ddd}) {2000 + int(random() * 4000)}-{line:04d}"


_PHONE_RE = re.compile(r"\((\d{2})\) (9\d{4}|[2-5]\d{3})-\d{4}")


def is_valid_phone(value: str) -> bool:
    match = _PHONE_RE.fullmatch(value)
    return bool(match) and int(match.group(1)) in DDDS  # type: ignore[union-attr]


def sku(name: str, prefix: str = "SKU") -> str:
    """Deterministic SKU from a product name (spec 000 §4.2: md5 of the name)."""
    digest = hashlib.md5(name.strip().lower().encode("utf-8")).hexdigest()
    return f"{prefix.upper()[:3]}-{digest[:12].upper()}"


_SKU_RE = re.compile(r"[A-Z]{3}-[0-9A-F]{12}")


def is_valid_sku(value: str, name: str | None = None) -> bool:
    """Shape right and, given the product name, the SKU it must derive from."""
    if not _SKU_RE.fullmatch(value):
        return False
    return name is None or value == sku(name, value[:3])
