"""Domain registry: the public domain API (see docs/domains.md).

A domain is data: its SQL files, its tables, its factories, its stream events,
its profile volumes and its checks. The core reads domains only through this
registry, which finds them in two places, the built-in ones included:

* the entry-point group ``pytest_oltpseed.domains`` (a package installs its
  domain with ``[project.entry-points."pytest_oltpseed.domains"]``;
  ``hospital`` and ``retail`` are registered so by this project);
* directories given by ``--domain-path DIR`` (CLI), ``seed_domain_path``
  (pytest ini) or ``OLTPSEED_DOMAIN_PATH`` (``os.pathsep``-separated), so a
  downstream suite keeps its domain in its own repository without packaging it.

Each source yields a :class:`Domain` whose ``package`` holds the modules
``factories``, ``events``, ``checks`` and optionally ``seeding``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from pytest_oltpseed.errors import OltpseedError, UsageError

ALL = "all"
SQL_STEPS = ("01_schema.sql", "02_indexes.sql", "03_seed-lookups.sql")
DROP_FILE = "99_drop_all.sql"
ENTRY_POINT_GROUP = "pytest_oltpseed.domains"
PATH_VARIABLE = "OLTPSEED_DOMAIN_PATH"
PROFILES = ("SMALL", "MEDIUM", "LARGE", "STRESS")
"""The profiles a domain gives volumes for (CUSTOM is MEDIUM plus overrides)."""
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


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
    package: str = ""
    """The package of ``factories``/``events``/``checks``/``seeding``; the
    registry fills in the module that defines ``DOMAIN`` when left empty."""
    sql: Path | None = None
    """Directory of the SQL files; the registry fills in ``sql/`` beside the
    package's ``__init__.py`` when left empty."""
    source: str = ""
    """Where the registry found the domain (entry point or directory)."""

    @property
    def sql_dir(self) -> Path:
        if self.sql is None:
            raise OltpseedError(f"domain {self.name!r} was not loaded by the registry")
        return self.sql

    def install_files(self) -> list[Path]:
        """Schema, indexes and lookups, in order; a domain may have no lookups."""
        return [p for p in (self.sql_dir / s for s in SQL_STEPS) if p.is_file()]

    @property
    def drop_file(self) -> Path:
        return self.sql_dir / DROP_FILE

    def _module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    def load_factories(self) -> ModuleType:
        """Import ``<package>.factories`` (which registers the domain's factories)."""
        return self._module("factories")

    def load_seeding(self) -> ModuleType | None:
        """Import ``<package>.seeding`` (stage hooks) when the domain has one."""
        try:
            return self._module("seeding")
        except ModuleNotFoundError as exc:
            if exc.name != f"{self.package}.seeding":
                raise
            return None

    def load_events(self) -> ModuleType:
        """Import ``<package>.events``: its stream ``EVENTS``."""
        return self._module("events")

    def load_checks(self) -> ModuleType:
        """Import ``<package>.checks``: its ``RULES``."""
        return self._module("checks")


def sql_root() -> Path:
    """``sql/`` inside the installed wheel, else the checkout's top-level ``sql/``."""
    package = Path(__file__).resolve().parent.parent
    shipped = package / "sql"
    return shipped if shipped.is_dir() else package.parent / "sql"


_paths: tuple[Path, ...] = ()
_active: frozenset[str] = frozenset()
_cache: dict[tuple[Path, ...], dict[str, Domain]] = {}


def use_paths(paths: Iterable[str | Path]) -> None:
    """Add directories to search for domains (``--domain-path``, the ini key).

    They come after ``OLTPSEED_DOMAIN_PATH``; each is checked at once, so a
    mistyped directory is one clear line rather than an unknown domain later.
    """
    global _paths
    added = []
    for given in paths:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise UsageError(f"--domain-path {given}: no such directory")
        added.append(path.resolve())
    _paths = tuple(dict.fromkeys((*_paths, *added)))


def search_path() -> tuple[Path, ...]:
    """``OLTPSEED_DOMAIN_PATH`` entries, then the directories given to use_paths."""
    found: list[Path] = []
    for entry in os.environ.get(PATH_VARIABLE, "").split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry.strip()).expanduser()
        if not path.is_dir():
            raise UsageError(f"{PATH_VARIABLE}: {entry.strip()}: no such directory")
        found.append(path.resolve())
    return tuple(dict.fromkeys((*found, *_paths)))


def registry() -> dict[str, Domain]:
    """Every registered domain by name: entry points first, then the path."""
    key = search_path()
    if key not in _cache:
        _cache[key] = _discover(key)
    return _cache[key]


def _discover(paths: Sequence[Path]) -> dict[str, Domain]:
    found: dict[str, Domain] = {}
    candidates = [*_from_entry_points(), *_from_paths(paths)]
    for domain in candidates:
        if not _NAME.match(domain.name) or domain.name == ALL:
            raise UsageError(
                f"domain name {domain.name!r} ({domain.source}) must be lower-case "
                f"letters, digits and _, and not {ALL!r}"
            )
        if domain.name in found:
            raise UsageError(
                f"domain {domain.name!r} is registered twice: "
                f"{found[domain.name].source} and {domain.source}"
            )
        _check_volumes(domain)
        found[domain.name] = domain
    return found


def _check_volumes(domain: Domain) -> None:
    """Every profile present, counts only for the domain's own tables (item
    tables may have none: they follow their headers)."""
    missing = [p for p in PROFILES if p not in domain.volumes]
    strange = {t for v in domain.volumes.values() for t in v} - set(domain.tables)
    if missing or strange:
        what = (
            f"no volumes for {', '.join(missing)}"
            if missing
            else f"volumes for unknown tables {', '.join(sorted(strange))}"
        )
        raise UsageError(f"domain {domain.name!r} ({domain.source}): {what}")


def _from_entry_points() -> list[Domain]:
    domains = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        source = f"entry point {point.name} = {point.value}"
        try:
            loaded = point.load()
        except Exception as exc:
            raise OltpseedError(
                f"domain {source} failed to load: {type(exc).__name__}: {exc}"
            ) from None
        if isinstance(loaded, ModuleType):
            loaded = getattr(loaded, "DOMAIN", None)
        domains.append(_completed(loaded, point.module, source))
    return domains


def _from_paths(paths: Sequence[Path]) -> list[Domain]:
    """Domain packages in each directory (or the directory itself, if a package)."""
    domains = []
    for directory in paths:
        if (directory / "__init__.py").is_file():
            packages = [directory]
        else:
            packages = sorted(
                p for p in directory.iterdir() if (p / "__init__.py").is_file()
            )
        for package in packages:
            module = _import_from(package)
            source = f"directory {package}"
            domains.append(_completed(getattr(module, "DOMAIN", None), module, source))
    return domains


def _import_from(package: Path) -> ModuleType:
    """Import the package at ``package`` under its directory name."""
    name = package.name
    if not name.isidentifier():
        raise UsageError(f"domain package {package}: {name!r} is not a module name")
    parent = str(package.parent)
    if parent not in sys.path:
        sys.path.append(parent)  # appended: never shadows an installed module
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise OltpseedError(
            f"domain package {package} failed to import: {type(exc).__name__}: {exc}"
        ) from None
    where = Path(getattr(module, "__file__", "") or "").resolve().parent
    if where != package.resolve():
        raise UsageError(
            f"domain package {package}: the name {name!r} is already taken by "
            f"{where}; rename the directory"
        )
    return module


def _completed(loaded: object, module: ModuleType | str, source: str) -> Domain:
    """The domain with its package and SQL directory filled in."""
    if not isinstance(loaded, Domain):
        raise OltpseedError(f"{source} does not define a Domain named DOMAIN")
    if isinstance(module, str):
        module = importlib.import_module(module)
    package = loaded.package or module.__name__
    sql_dir = loaded.sql
    if sql_dir is None:
        sql_dir = Path(module.__file__ or "").resolve().parent / "sql"
    return replace(loaded, package=package, sql=sql_dir, source=source)


def names() -> tuple[str, ...]:
    return (*registry(), ALL)


def default_domains() -> list[Domain]:
    """What ``--domain all`` means: every domain that is not opt-in."""
    return [domain for domain in registry().values() if not domain.opt_in]


def tables_of(domains: Iterable[Domain]) -> list[str]:
    """Every table of ``domains``, each domain's parents before children."""
    return [table for domain in domains for table in domain.tables]


def select(name: str) -> list[Domain]:
    """The domains meant by ``--domain``: a name, ``a,b`` or ``all``.

    One line and exit 2 for an unknown name. ``all`` leaves opt-in domains
    out, so adding one changes no default run.
    """
    global _active
    keys = [key.strip().lower() for key in name.split(",") if key.strip()]
    if not keys:
        raise UsageError(f"--domain needs a name: one of {', '.join(names())}")
    chosen: dict[str, Domain] = {}
    for key in keys:
        if key == ALL:
            chosen.update((d.name, d) for d in default_domains())
        elif key in registry():
            chosen[key] = registry()[key]
        else:
            raise UsageError(
                f"unknown --domain {key!r}: expected one of {', '.join(names())}"
                " (or a comma-separated list)"
            )
    owners: dict[str, str] = {}
    for domain in chosen.values():
        for table in domain.tables:
            if table in owners:
                raise UsageError(
                    f"domains {owners[table]} and {domain.name} both have a table "
                    f"{table!r}: they live in different databases, select one "
                    "at a time"
                )
            owners[table] = domain.name
    _active = frozenset(chosen)
    return list(chosen.values())


def active() -> frozenset[str]:
    """The domains of the latest selection: which factory a table name means
    when two registered domains use it (each lives in its own database)."""
    return _active


def normalized(name: str) -> str:
    """``--domain`` as one canonical string (``all`` or names in registry order)."""
    chosen = {d.name for d in select(name)}
    if chosen == {d.name for d in default_domains()} and ALL in name.lower():
        return ALL
    return ",".join(n for n in registry() if n in chosen)
