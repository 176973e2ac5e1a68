"""Domain registry: a domain is data (its SQL, its tables, its factories).

Each subpackage of ``pytest_oltpseed.domains`` exposes ``DOMAIN``; they are
discovered here, so adding a third domain touches no core module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

from pytest_oltpseed.errors import UsageError

ALL = "all"
SQL_STEPS = ("01_schema.sql", "02_indexes.sql", "03_seed-lookups.sql")
DROP_FILE = "99_drop_all.sql"


@dataclass(frozen=True)
class Domain:
    """One business domain: its name and its tables, parents before children."""

    name: str
    tables: tuple[str, ...]
    volumes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Profile name -> table -> rows the seeder writes (SMALL..STRESS)."""
    opt_in: bool = False
    """Left out of ``--domain all``: only named explicitly (``cdclab``, whose
    edge cases would surprise a pipeline that just wants business data)."""

    @property
    def sql_dir(self) -> Path:
        return sql_root() / self.name

    def install_files(self) -> list[Path]:
        """Schema, indexes and lookups, in order; a domain may have no lookups."""
        return [p for p in (self.sql_dir / s for s in SQL_STEPS) if p.is_file()]

    @property
    def drop_file(self) -> Path:
        return self.sql_dir / DROP_FILE

    @property
    def package(self) -> str:
        return f"{__name__}.{self.name}"

    def load_factories(self) -> ModuleType:
        """Import ``<domain>.factories`` (which registers the domain's factories)."""
        return importlib.import_module(f"{self.package}.factories")

    def load_seeding(self) -> ModuleType | None:
        """Import ``<domain>.seeding`` (stage hooks) when the domain has one."""
        try:
            return importlib.import_module(f"{self.package}.seeding")
        except ModuleNotFoundError as exc:
            if exc.name != f"{self.package}.seeding":
                raise
            return None

    def load_events(self) -> ModuleType:
        """Import ``<domain>.events``: its stream ``EVENTS``."""
        return importlib.import_module(f"{self.package}.events")

    def load_checks(self) -> ModuleType:
        """Import ``<domain>.checks``: its ROW_RULES and DB_RULES."""
        return importlib.import_module(f"{self.package}.checks")


def sql_root() -> Path:
    """``sql/`` inside the installed wheel, else the checkout's top-level ``sql/``."""
    package = Path(__file__).resolve().parent.parent
    shipped = package / "sql"
    return shipped if shipped.is_dir() else package.parent / "sql"


@cache
def registry() -> dict[str, Domain]:
    found: dict[str, Domain] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.ispkg:
            domain = importlib.import_module(f"{__name__}.{module.name}").DOMAIN
            found[domain.name] = domain
    return found


def names() -> tuple[str, ...]:
    return (*registry(), ALL)


def default_domains() -> list[Domain]:
    """What ``--domain all`` means: every domain that is not opt-in."""
    return [domain for domain in registry().values() if not domain.opt_in]


def tables_of(domains: Iterable[Domain]) -> list[str]:
    """Every table of ``domains``, each domain's parents before children."""
    return [table for domain in domains for table in domain.tables]


def select(name: str) -> list[Domain]:
    """The domains meant by ``--domain``; one line and exit 2 for an unknown name.

    ``all`` leaves opt-in domains out, so adding one changes no default run.
    """
    key = name.strip().lower()
    if key == ALL:
        return default_domains()
    if key not in registry():
        raise UsageError(
            f"unknown --domain {name!r}: expected one of {', '.join(names())}"
        )
    return [registry()[key]]
