"""pytest plugin (entry point ``pytest11``): options, marker and fixtures.

Thin glue over :mod:`pytest_oltpseed.fixtures.janitor` (seeded templates and clones),
:mod:`pytest_oltpseed.fixtures.databases` (what a test receives) and the factories.
Importing it starts nothing: a server starts, and a template is seeded, only
when a test asks for a fixture that needs one.

Options (each also an ini key of the same name, ``SEED_SIZE``/``SEED_RANDOM``/
``OLTPSEED_DSN`` as environment fallbacks): ``--seed-profile``,
``--seed-domain``, ``--seed-random``, ``--seed-dsn``. Marker:
``@pytest.mark.seed_profile("LARGE")`` or ``seed_profile(name="LARGE")``.
A connection string is never shown with its password.
"""

from __future__ import annotations

import contextlib
import os
import types
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import psycopg
import pytest

from pytest_oltpseed.cdc import Captured
from pytest_oltpseed.config import (
    Sources,
    Value,
    check_choice,
    check_dsn,
    check_int,
    redact,
    seed_overrides,
)
from pytest_oltpseed.errors import ConfigError, OltpseedError, OltpseedWarning
from pytest_oltpseed.fixtures.databases import (
    Examples,
    IsolatedConnection,
    OltpDatabase,
)

# ``from pytest_oltpseed.plugin import register``: pytest-factoryboy-style fixtures
from pytest_oltpseed.fixtures.register import register as register
from pytest_oltpseed.profiles import (
    DEFAULT_PROFILE,
    PROFILE_NAMES,
    Profile,
    marker_profile,
)
from pytest_oltpseed.server.embedded import (
    ServerInfo,
    ephemeral_server,
    removed_on_sigterm,
)
from pytest_oltpseed.server.shared import SharedServer

if TYPE_CHECKING:  # the templates module (and the seeder) load on first use
    from pytest_oltpseed.fixtures.janitor import Template

DEFAULT_POOL_SIZE = 4  # bench/fixtures.py: 4 keeps even p90 low for 50 ms tests

OPTIONS = {
    "seed_profile": "volume profile: SMALL, MEDIUM (default), LARGE, STRESS, CUSTOM",
    "seed_domain": "a registered domain, a comma-separated list, or all (default)",
    "seed_random": "random seed of the seeded data (default 0)",
    "seed_dsn": "use this PostgreSQL server instead of starting one (also "
    "OLTPSEED_DSN); only databases named oltpseed_* are created and dropped there",
    "seed_pool_size": "oltp_database clones kept ready per template by a "
    f"background thread (default {DEFAULT_POOL_SIZE}, shared among xdist workers; "
    "0 clones in the test)",
}
FLAGS = {
    "seed_keep_failed": "keep the oltp_database clone of a failing test and show "
    "its DSN; the next session drops kept clones unless given this flag again",
}
ENV = {
    "seed_profile": "SEED_SIZE",
    "seed_random": "SEED_RANDOM",
    "seed_dsn": "OLTPSEED_DSN",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oltpseed", "realistic OLTP data (pytest-oltpseed)")
    for name, text in OPTIONS.items():
        group.addoption(
            f"--{name.replace('_', '-')}", dest=name, default=None, help=text
        )
        parser.addini(name, text)
    for name, text in FLAGS.items():
        group.addoption(
            f"--{name.replace('_', '-')}", dest=name, action="store_true", help=text
        )
        parser.addini(name, text, type="bool", default=False)
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
    pool_size: int = DEFAULT_POOL_SIZE
    keep_failed: bool = False
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
    dsn = checked("seed_dsn", lambda v: check_dsn(v) if v else None, None)
    # Unless given, xdist workers share the default: each worker's pool is
    # filled by a thread competing with every worker's tests for the cores.
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1) or 1)
    default_pool = max(1, DEFAULT_POOL_SIZE // workers)
    pool_size = checked(
        "seed_pool_size",
        lambda v: check_int(v, default_pool, minimum=0, maximum=64),
        default_pool,
    )
    keep_failed = bool(
        config.getoption("seed_keep_failed") or config.getini("seed_keep_failed")
    )
    return Choice(
        profile,
        domain,
        seed,
        dsn,
        pool_size,
        keep_failed,
        "; ".join(problems) or None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "seed_profile(name): seed this test's oltpseed database at profile "
        "`name` (SMALL, MEDIUM, LARGE, STRESS, CUSTOM)",
    )
    config.stash[_CHOICE] = _choice(config)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        shared = SharedServer.from_input(workerinput)
        if shared is not None:
            config.stash[_SHARED] = shared
    elif config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(config), "oltpseed-xdist")


class _XdistController:
    """In the xdist controller: name the session's shared server directory for
    every worker, and remove the server after the last worker is gone."""

    def __init__(self, config: pytest.Config) -> None:
        self.shared = SharedServer.plan()
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(removed_on_sigterm(self.shared.remove))
        config.add_cleanup(self.close)

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput.update(self.shared.to_input())

    def close(self) -> None:
        self.stack.close()
        self.shared.remove()


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """A malformed ``seed_profile`` marker is a usage error before any test runs.

    In an xdist worker a usage error would crash the worker, so there the
    test fails at setup with the same line instead.
    """
    for item in items:
        for marker in item.iter_markers("seed_profile"):
            try:
                marker_profile(marker.args, marker.kwargs)
            except OltpseedError as exc:
                problem = f"oltpseed: {item.nodeid}: {exc}"
                if not hasattr(config, "workerinput"):
                    raise pytest.UsageError(problem) from None
                item.stash[_MARKER_PROBLEM] = problem
                break


def pytest_runtest_setup(item: pytest.Item) -> None:
    problem = item.stash.get(_MARKER_PROBLEM, None)
    if problem:
        pytest.fail(problem, pytrace=False)


def pytest_report_header(config: pytest.Config) -> str:
    choice = config.stash[_CHOICE]
    server = (
        f"--seed-dsn ({redact(choice.dsn)})"
        if choice.dsn
        else "ephemeral, started on first use"
    )
    header = (
        f"oltpseed: profile={choice.profile} domain={choice.domain} "
        f"seed={choice.seed} server={server}"
    )
    return f"{header} ({choice.error})" if choice.error else header


_CHOICE = pytest.StashKey[Choice]()
_MARKER_PROBLEM = pytest.StashKey[str]()
_SHARED = pytest.StashKey[SharedServer]()
_DATABASES = pytest.StashKey[list[OltpDatabase]]()
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.fixture(scope="session")
def oltp_server(request: pytest.FixtureRequest) -> Iterator[ServerInfo]:
    """The session's PostgreSQL server: the ``--seed-dsn`` one when given, else
    a throwaway cluster, root-safe, removed at the end (and on SIGTERM); under
    xdist one cluster for the whole session, shared by every worker.

    The throwaway one listens on a free loopback port with ``wal_level=logical``;
    connect with ``oltp_server.dsn()`` (database ``oltpseed``) or
    ``oltp_server.dsn("other")``.
    """
    choice = request.config.stash[_CHOICE]
    if choice.error:
        pytest.fail(choice.error, pytrace=False)
    if choice.dsn:
        yield ServerInfo.external(choice.dsn)
        return
    shared = request.config.stash.get(_SHARED, None)
    if shared is not None:  # an xdist worker: one server for the whole session
        try:
            yield shared.acquire(keep_kept=choice.keep_failed)
        except OltpseedError as exc:
            pytest.fail(f"oltpseed: {exc}", pytrace=False)
        return
    try:
        with ephemeral_server(keep_kept=choice.keep_failed) as info:
            yield info
    except OltpseedError as exc:
        pytest.fail(f"oltpseed: {exc}", pytrace=False)


class _Session:
    """Per-session state: the janitor, templates built, the oltp_conn databases."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        from pytest_oltpseed.fixtures.janitor import Janitor
        from pytest_oltpseed.fixtures.pool import ClonePool

        self.choice = request.config.stash[_CHOICE]
        self.server: ServerInfo = request.getfixturevalue("oltp_server")
        self.janitor = Janitor(self.server.dsn)
        self.pool = ClonePool(self.janitor, self.choice.pool_size)
        self.templates: dict[Any, Template] = {}
        self.working: dict[Any, tuple[str, IsolatedConnection]] = {}
        self.warned: set[str] = set()
        try:
            self.janitor.sweep(keep_kept=self.choice.keep_failed)
        except OltpseedError as exc:
            pytest.fail(f"oltpseed: {exc}", pytrace=False)

    def template(self, profile: Profile, domain: str, seed: int) -> Template:
        from pytest_oltpseed.domains import select
        from pytest_oltpseed.fixtures.janitor import Recipe

        key = _key(profile, domain, seed)
        if key not in self.templates:
            try:
                self.templates[key] = self.janitor.template(
                    Recipe(profile, tuple(select(domain)), seed)
                )
            except OltpseedError as exc:
                pytest.fail(f"oltpseed: {exc}", pytrace=False)
        return self.templates[key]

    def clone(self, template: Template, *, pooled: bool = False) -> str:
        try:
            if pooled:
                return self.pool.take(template.name)
            return self.janitor.clone(template.name)
        except OltpseedError as exc:
            pytest.fail(f"oltpseed: {exc}", pytrace=False)

    def release(self, name: str, failed_test: str | None) -> None:
        """The test is done with clone ``name``: kept when it failed and
        ``--seed-keep-failed`` asked for it, else handed back to be dropped."""
        if failed_test and self.choice.keep_failed:
            from pytest_oltpseed.server.embedded import mark_kept

            self.janitor.keep(name, failed_test)
            mark_kept(self.server)
            return
        self.pool.give_back(name)

    def working_connection(self, seeded: _Seeded) -> IsolatedConnection:
        """The session's connection to its working clone of ``seeded``'s
        template (what oltp_conn and oltp_examples roll back after each use)."""
        entry = self.working.get(seeded.key)
        if entry is None or entry[1].closed:
            name = entry[0] if entry else self.clone(seeded.template)
            connection = IsolatedConnection.connect(self.janitor.dsn(name))
            entry = self.working[seeded.key] = (name, connection)
        return entry[1]

    def warn(self, profile: Profile) -> None:
        """Show the profile's warnings (an ignored ``SEED_<TABLE>``) once each."""
        for text in profile.warnings:
            if text not in self.warned:
                self.warned.add(text)
                warnings.warn(OltpseedWarning(text), stacklevel=2)

    def close(self) -> None:
        """Drop the oltp_conn clones; templates stay (reused by the next run on a
        --seed-dsn server, gone with an ephemeral one)."""
        for name, conn in self.working.values():
            conn.close()
            self.janitor.drop(name)
        self.pool.close()


def _key(profile: Profile, domain: str, seed: int) -> tuple[Any, ...]:
    return (profile.name, tuple(sorted(profile.counts.items())), domain, seed)


@pytest.fixture(scope="session")
def _oltp_session(request: pytest.FixtureRequest) -> Iterator[_Session]:
    session = _Session(request)
    yield session
    session.close()


def _requested_profile(request: pytest.FixtureRequest) -> Profile:
    """The profile this test asks for: its marker, else the session's."""
    from pytest_oltpseed.profiles import resolve

    choice = request.config.stash[_CHOICE]
    if choice.error:
        pytest.fail(choice.error, pytrace=False)
    marker = request.node.get_closest_marker("seed_profile")
    try:
        name = marker_profile(marker.args, marker.kwargs) if marker else None
        return resolve(name or choice.profile, seed_overrides(Sources.load()))
    except OltpseedError as exc:
        pytest.fail(f"oltpseed: {exc}", pytrace=False)


@dataclass(frozen=True)
class _Seeded:
    """This test's template and the profile it was seeded at."""

    profile: Profile
    template: Template
    key: tuple[Any, ...]


@pytest.fixture
def _oltp_seeded(request: pytest.FixtureRequest, _oltp_session: _Session) -> _Seeded:
    profile = _requested_profile(request)
    _oltp_session.warn(profile)
    choice = _oltp_session.choice
    template = _oltp_session.template(profile, choice.domain, choice.seed)
    return _Seeded(profile, template, _key(profile, choice.domain, choice.seed))


@pytest.fixture
def oltp_profile(_oltp_seeded: _Seeded) -> Profile:
    """The profile of this test: ``.name``, and ``.counts``, the exact rows of
    every table of the chosen domains in its seeded database (lookups and
    items included)."""
    requested = _oltp_seeded.profile
    return Profile(
        requested.name,
        dict(_oltp_seeded.template.counts),
        requested.batch_size,
        requested.warnings,
    )


@pytest.fixture
def oltp_database(
    request: pytest.FixtureRequest, _oltp_session: _Session, _oltp_seeded: _Seeded
) -> Iterator[OltpDatabase]:
    """A fresh clone of the seeded database: commit freely, open several connections.

    Taken from a pool of ready clones (``--seed-pool-size``); with
    ``--seed-keep-failed`` a failing test's clone is kept and its DSN shown.
    """
    yield from _cloned(_oltp_session, _oltp_seeded.template, request.node)


def _cloned(
    session: _Session, template: Template, node: pytest.Item | None = None
) -> Iterator[OltpDatabase]:
    name = session.clone(template, pooled=True)
    database = OltpDatabase(session.janitor.dsn(name), name)
    if node is not None:
        node.stash.setdefault(_DATABASES, []).append(database)
    failed = None
    try:
        yield database
        report = node.stash.get(_CALL_REPORT, None) if node is not None else None
        if report is not None and report.failed:
            failed = report.nodeid
    finally:
        session.release(name, failed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember the test's outcome for ``oltp_database``'s teardown, and show
    the DSN (password masked) of a failing test's kept clones."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
        choice = item.config.stash[_CHOICE]
        if report.failed and choice.keep_failed:
            for database in item.stash.get(_DATABASES, []):
                report.sections.append(
                    (
                        "oltpseed: kept database",
                        f"{database.dbname}: {redact(database.dsn)}",
                    )
                )
    return report


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
        template = _oltp_session.template(
            chosen, domain or choice.domain, choice.seed if seed is None else seed
        )
        yield from _cloned(_oltp_session, template)

    return _fixture


@pytest.fixture
def oltp_conn(
    _oltp_session: _Session, _oltp_seeded: _Seeded
) -> Iterator[psycopg.Connection]:
    """A connection to the seeded database; each test's changes vanish after it.

    ``commit()`` is refused; ``rollback()`` returns to the state at the test's
    start (see :class:`IsolatedConnection`).
    """
    conn = _oltp_session.working_connection(_oltp_seeded)
    conn.begin_test()
    try:
        yield conn
    finally:
        conn.end_test()


@pytest.fixture
def oltp_factories(
    oltp_conn: psycopg.Connection, _oltp_session: _Session
) -> Iterator[types.SimpleNamespace]:
    """The factories bound to ``oltp_conn``: ``oltp_factories.Paciente.create()``."""
    from pytest_oltpseed.data.factory import all_factories, bind

    with bind(oltp_conn, seed=_oltp_session.choice.seed):
        yield types.SimpleNamespace(**all_factories())


@pytest.fixture(scope="session")
def oltp_examples(request: pytest.FixtureRequest, _oltp_session: _Session) -> Examples:
    """For hypothesis ``@given`` tests: session-scoped, so the function-scoped
    fixture health check stays on; ``with oltp_examples.connection() as conn:``
    (or ``.factories()``) gives each example the pristine seeded state."""
    profile = _requested_profile(request)
    choice = _oltp_session.choice
    template = _oltp_session.template(profile, choice.domain, choice.seed)
    seeded = _Seeded(profile, template, _key(profile, choice.domain, choice.seed))
    return Examples(
        lambda: _oltp_session.working_connection(seeded), choice.seed
    ).warm()
