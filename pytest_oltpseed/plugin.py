"""pytest plugin (entry point ``pytest11``): options, marker and fixtures.

Thin glue over :mod:`pytest_oltpseed.templates` (seeded templates and clones)
and the factories. Importing it starts nothing: a server starts, and a
template is seeded, only when a test asks for a fixture that needs one.

Options (each also an ini key of the same name, ``SEED_SIZE``/``SEED_RANDOM``
as environment fallbacks): ``--seed-profile``, ``--seed-domain``,
``--seed-random``, ``--seed-dsn``. Marker: ``@pytest.mark.seed_profile("LARGE")``.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
import pytest

from pytest_oltpseed.cdc import Captured
from pytest_oltpseed.config import (
    Sources,
    Value,
    check_choice,
    check_int,
    seed_overrides,
)
from pytest_oltpseed.errors import ConfigError, OltpseedError
from pytest_oltpseed.profiles import DEFAULT_PROFILE, PROFILE_NAMES, Profile
from pytest_oltpseed.server import ServerInfo, ephemeral_server

OPTIONS = {
    "seed_profile": "volume profile: SMALL, MEDIUM (default), LARGE, STRESS, CUSTOM",
    "seed_domain": "a registered domain, a comma-separated list, or all (default)",
    "seed_random": "random seed of the seeded data (default 0)",
    "seed_dsn": "use this PostgreSQL server instead of starting one; only "
    "databases named oltpseed_* are created and dropped there",
}
ENV = {"seed_profile": "SEED_SIZE", "seed_random": "SEED_RANDOM"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oltpseed", "realistic OLTP data (pytest-oltpseed)")
    for name, text in OPTIONS.items():
        group.addoption(
            f"--{name.replace('_', '-')}", dest=name, default=None, help=text
        )
        parser.addini(name, text)
    text = "directories of domain packages (after OLTPSEED_DOMAIN_PATH)"
    group.addoption(
        "--seed-domain-path", dest="seed_domain_path", action="append", help=text
    )
    parser.addini("seed_domain_path", text, type="paths")


@dataclass(frozen=True)
class Choice:
    """The session's resolved options."""

    profile: str
    domain: str
    seed: int
    dsn: str | None
    error: str | None = None  # a bad value from the environment, for fixtures


def _choice(config: pytest.Config) -> Choice:
    """Options, then ini keys, then the environment, checked as the CLI checks.

    A bad command-line or ini value is a usage error at once. A bad value
    from the environment (``SEED_SIZE`` may mean something else to your
    application) only fails the tests that use an oltpseed fixture.
    """
    problems: list[str] = []

    def value(name: str) -> tuple[Value | None, bool]:
        if config.getoption(name):
            flag = f"--{name.replace('_', '-')}"
            return Value(config.getoption(name), flag, "command line"), True
        if config.getini(name):
            return Value(config.getini(name), name, "ini file"), True
        variable = ENV.get(name, "")
        if os.environ.get(variable):
            return Value(os.environ[variable], variable, "environment"), False
        return None, True

    def checked(name: str, check: Callable[[Value | None], Any], default: Any) -> Any:
        given, explicit = value(name)
        try:
            return check(given)
        except ConfigError as exc:
            if explicit:
                raise pytest.UsageError(f"oltpseed: {exc}") from None
            problems.append(f"oltpseed: {exc}")
            return default

    from pytest_oltpseed.domains import normalized, use_paths

    try:
        use_paths(
            [
                *(config.getini("seed_domain_path") or ()),
                *(config.getoption("seed_domain_path") or ()),
            ]
        )
    except OltpseedError as exc:
        raise pytest.UsageError(f"oltpseed: {exc}") from None

    def domain_choice(given: Value | None) -> str:
        if given is None:
            return "all"
        try:
            return normalized(str(given.raw))
        except OltpseedError as exc:  # never from the environment: always explicit
            raise pytest.UsageError(f"oltpseed: {given.name}: {exc}") from None

    profile = checked(
        "seed_profile",
        lambda v: check_choice(v, DEFAULT_PROFILE, PROFILE_NAMES),
        DEFAULT_PROFILE,
    )
    domain = checked(
        "seed_domain",
        domain_choice,
        "all",
    )
    seed = checked("seed_random", lambda v: check_int(v, 0, minimum=0), 0)
    dsn = config.getoption("seed_dsn") or config.getini("seed_dsn") or None
    return Choice(profile, domain, seed, dsn, "; ".join(problems) or None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "seed_profile(name): seed this test's oltpseed database at profile "
        "`name` (SMALL, MEDIUM, LARGE, STRESS, CUSTOM)",
    )
    config.stash[_CHOICE] = _choice(config)


def pytest_report_header(config: pytest.Config) -> str:
    choice = config.stash[_CHOICE]
    server = "--seed-dsn" if choice.dsn else "ephemeral, started on first use"
    header = (
        f"oltpseed: profile={choice.profile} domain={choice.domain} "
        f"seed={choice.seed} server={server}"
    )
    return f"{header} ({choice.error})" if choice.error else header


_CHOICE = pytest.StashKey[Choice]()


@pytest.fixture(scope="session")
def oltp_server() -> Iterator[ServerInfo]:
    """A throwaway PostgreSQL cluster for the session, root-safe, removed at the end.

    It listens on a free loopback port with ``wal_level=logical``; connect with
    ``oltp_server.dsn()`` (database ``oltpseed``) or ``oltp_server.dsn("other")``.
    """
    try:
        with ephemeral_server() as info:
            yield info
    except OltpseedError as exc:
        pytest.fail(f"oltpseed: {exc}", pytrace=False)


class _Session:
    """Per-session state: the janitor, templates built, the oltp_conn databases."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        from pytest_oltpseed.templates import Janitor

        choice = request.config.stash[_CHOICE]
        if choice.error:
            pytest.fail(choice.error, pytrace=False)
        self.choice = choice
        if choice.dsn:
            from psycopg.conninfo import make_conninfo

            dsn = choice.dsn
            self.janitor = Janitor(lambda db: make_conninfo(dsn, dbname=db))
        else:
            server: ServerInfo = request.getfixturevalue("oltp_server")
            self.janitor = Janitor(server.dsn)
        self.templates: dict[Any, str] = {}
        self.working: dict[Any, tuple[str, psycopg.Connection]] = {}
        try:
            self.janitor.sweep()
        except OltpseedError as exc:
            pytest.fail(f"oltpseed: {exc}", pytrace=False)

    def template(self, profile: Profile, domain: str, seed: int) -> str:
        from pytest_oltpseed.domains import select
        from pytest_oltpseed.templates import Recipe

        key = _key(profile, domain, seed)
        if key not in self.templates:
            try:
                name = self.janitor.template(
                    Recipe(profile, tuple(select(domain)), seed)
                )
            except OltpseedError as exc:
                pytest.fail(f"oltpseed: {exc}", pytrace=False)
            self.templates[key] = name
        return self.templates[key]

    def close(self) -> None:
        """Drop the oltp_conn clones; templates stay (reused by the next run on a
        --seed-dsn server, gone with an ephemeral one)."""
        for name, conn in self.working.values():
            conn.close()
            self.janitor.drop(name)


def _key(profile: Profile, domain: str, seed: int) -> tuple[Any, ...]:
    return (profile.name, tuple(sorted(profile.counts.items())), domain, seed)


@pytest.fixture(scope="session")
def _oltp_session(request: pytest.FixtureRequest) -> Iterator[_Session]:
    session = _Session(request)
    yield session
    session.close()


@pytest.fixture
def oltp_profile(request: pytest.FixtureRequest) -> Profile:
    """The resolved profile of this test (``.counts``: rows per table)."""
    from pytest_oltpseed.profiles import resolve

    choice = request.config.stash[_CHOICE]
    if choice.error:
        pytest.fail(choice.error, pytrace=False)
    marker = request.node.get_closest_marker("seed_profile")
    name = str(marker.args[0]).upper() if marker and marker.args else choice.profile
    if name not in PROFILE_NAMES:
        pytest.fail(
            f"oltpseed: unknown seed_profile marker {name!r}: expected one "
            f"of {', '.join(PROFILE_NAMES)}",
            pytrace=False,
        )
    try:
        return resolve(name, seed_overrides(Sources.load()))
    except OltpseedError as exc:
        pytest.fail(f"oltpseed: {exc}", pytrace=False)


@dataclass
class OltpDatabase:
    """A fresh database cloned from the seeded template, dropped after the test."""

    dsn: str
    dbname: str

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(self.dsn, **kwargs)


@pytest.fixture
def oltp_database(
    _oltp_session: _Session, oltp_profile: Profile
) -> Iterator[OltpDatabase]:
    """A fresh clone of the seeded database: commit freely, open several connections."""
    yield from _cloned(
        _oltp_session,
        oltp_profile,
        _oltp_session.choice.domain,
        _oltp_session.choice.seed,
    )


def _cloned(
    session: _Session, profile: Profile, domain: str, seed: int
) -> Iterator[OltpDatabase]:
    name = session.janitor.clone(session.template(profile, domain, seed))
    try:
        yield OltpDatabase(session.janitor.dsn(name), name)
    finally:
        session.janitor.drop(name)


@pytest.fixture
def oltp_cdc(
    _oltp_session: _Session, oltp_database: OltpDatabase
) -> Iterator[Captured]:
    """The changes committed to ``oltp_database`` during the test, as a CDC
    client sees them (a logical slot and publication, dropped after):
    ``oltp_cdc.counts()[("consultas", "insert")]``, ``oltp_cdc.changes("exames")``
    (keys typed: ``change.key == (2,)`` for id 2).
    """
    from pytest_oltpseed import cdc
    from pytest_oltpseed.domains import select, tables_of

    tables = tables_of(select(_oltp_session.choice.domain))
    name = f"oltpseed_fx_{oltp_database.dbname.removeprefix('oltpseed_db_')}"[:63]
    try:
        with (
            oltp_database.connect(autocommit=True) as conn,
            cdc.capturing(conn, tables, slot=name, publication=name) as seen,
        ):
            yield seen
    except OltpseedError as exc:  # no REPLICATION privilege, wal_level, ...
        pytest.fail(f"oltpseed: {exc}", pytrace=False)


def oltp_database_factory(
    profile: str | None = None,
    *,
    domain: str | None = None,
    seed: int | None = None,
    scope: Literal["session", "package", "module", "class", "function"] = "function",
) -> Any:
    """A fixture of your own, pytest-postgresql style: a seeded clone at the
    profile, domain and seed you name (others from the command line), in the
    scope you choose. In a conftest.py::

        large_db = oltp_database_factory("LARGE", scope="module")
    """
    from pytest_oltpseed.profiles import resolve

    if profile is not None and profile.upper() not in PROFILE_NAMES:
        raise ValueError(
            f"unknown profile {profile!r}: expected one of " + ", ".join(PROFILE_NAMES)
        )

    @pytest.fixture(scope=scope)
    def _fixture(_oltp_session: _Session) -> Iterator[OltpDatabase]:
        choice = _oltp_session.choice
        chosen = resolve((profile or choice.profile).upper())
        yield from _cloned(
            _oltp_session,
            chosen,
            domain or choice.domain,
            choice.seed if seed is None else seed,
        )

    return _fixture


class IsolatedConnection(psycopg.Connection):
    """The oltp_conn connection: everything a test does is rolled back after it.

    ``commit()`` would break that promise for the next test, so it fails with
    a message pointing at ``oltp_database``; ``conn.transaction()`` blocks
    work (they become savepoints).
    """

    def commit(self) -> None:
        raise OltpseedError(
            "oltp_conn rolls every test back, so commit() is not allowed; request "
            "oltp_database for a database of the test's own that may commit"
        )


@pytest.fixture
def oltp_conn(
    _oltp_session: _Session, oltp_profile: Profile
) -> Iterator[psycopg.Connection]:
    """A connection to the seeded database; each test's changes vanish after it."""
    choice = _oltp_session.choice
    key = _key(oltp_profile, choice.domain, choice.seed)
    entry = _oltp_session.working.get(key)
    if entry is None or entry[1].closed:
        template = _oltp_session.template(oltp_profile, choice.domain, choice.seed)
        name = entry[0] if entry else _oltp_session.janitor.clone(template)
        connection = IsolatedConnection.connect(_oltp_session.janitor.dsn(name))
        entry = _oltp_session.working[key] = (name, connection)
    conn = entry[1]
    # Open the transaction now: a test's own conn.transaction() blocks then
    # become savepoints instead of committing.
    conn.execute("SELECT 1")
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.rollback()


@pytest.fixture
def oltp_factories(
    oltp_conn: psycopg.Connection, _oltp_session: _Session
) -> Iterator[types.SimpleNamespace]:
    """The factories bound to ``oltp_conn``: ``oltp_factories.Paciente.create()``."""
    from pytest_oltpseed.factory import all_factories, bind

    with bind(oltp_conn, seed=_oltp_session.choice.seed):
        yield types.SimpleNamespace(**all_factories())
