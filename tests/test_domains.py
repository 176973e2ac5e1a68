"""Domains as a public API: entry points, --domain-path, lists, the worked example."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed.domains import ENTRY_POINT_GROUP, normalized, registry, select
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli, scratch_database

EXAMPLES = Path(__file__).parent / "data" / "domains"


def test_builtins_load_through_the_entry_point_group() -> None:
    from importlib.metadata import entry_points

    points = {e.name for e in entry_points(group=ENTRY_POINT_GROUP)}
    assert {"hospital", "retail"} <= points
    for name in ("hospital", "retail"):
        domain = registry()[name]
        assert domain.source.startswith(f"entry point {name} = ")
        assert domain.package == f"pytest_oltpseed.domains.{name}"
        assert (domain.sql_dir / "01_schema.sql").is_file()


def test_domain_accepts_lists() -> None:
    assert [d.name for d in select("retail, hospital")] == ["retail", "hospital"]
    assert [d.name for d in select("hospital,all")] == ["hospital", "retail"]
    assert normalized("RETAIL,hospital") == "hospital,retail"
    assert normalized("all") == "all"


def test_example_domain_end_to_end(database: str, cli_env: dict[str, str]) -> None:
    """The docs' worked example, from its own directory: init, seed, check,
    stream, counts; the flag and the variable find it alike."""
    listed = run_cli("--domain-path", str(EXAMPLES), "domains", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    assert "library" in listed.stdout
    env = {**cli_env, "OLTPSEED_DOMAIN_PATH": str(EXAMPLES)}
    for args in (
        ("init-db", "--domain", "library"),
        ("seed", "--domain", "library", "--profile", "SMALL"),
        ("stream", "--domain", "library", "--max-events", "50"),
        ("check", "--domain", "library"),
    ):
        done = run_cli(*args, "--dsn", database, env=env)
        assert done.returncode == 0, (args, done.stderr)
    counts = run_cli("counts", "--json", "--domain", "library", "--dsn", database,
                     env=env)  # fmt: skip
    found = json.loads(counts.stdout)
    assert found["authors"] >= 30 and found["books"] >= 120
    with psycopg.connect(database) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM books b LEFT JOIN authors a ON a.id = b.author_id "
            "WHERE a.id IS NULL"
        ).fetchone()
    assert orphans == (0,)


BAD = {
    "no_domain": ("x = 1\n", "does not define a Domain named DOMAIN"),
    "twice": (
        "from pytest_oltpseed.domains import Domain\n"
        "DOMAIN = Domain('hospital', ('t1',), {p: {} for p in "
        "('SMALL', 'MEDIUM', 'LARGE', 'STRESS')})\n",
        "domain 'hospital' is registered twice",
    ),
    "novolumes": (
        "from pytest_oltpseed.domains import Domain\n"
        "DOMAIN = Domain('novolumes', ('t2',), {'SMALL': {'t2': 1}})\n",
        "no volumes for MEDIUM, LARGE, STRESS",
    ),
    "broken": ("import no_such_module_here\n", "failed to import: ModuleNotFound"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_domains_are_one_line(
    case: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    source, expected = BAD[case]
    package = tmp_path / f"oltp_bad_{case}"
    package.mkdir()
    (package / "__init__.py").write_text(source)
    done = run_cli("--domain-path", str(tmp_path), "counts", env=cli_env)
    assert done.returncode in (1, 2)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert expected in done.stderr


def test_missing_directory_is_a_usage_error(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "OLTPSEED_DOMAIN_PATH": "/nonexistent/domains"}
    done = run_cli("counts", env=env)
    assert done.returncode == 2
    assert "OLTPSEED_DOMAIN_PATH: /nonexistent/domains: no such directory" in (
        done.stderr
    )


SUITE = """
def test_factories_of_a_path_domain(oltp_conn, oltp_factories, oltp_profile):
    assert oltp_profile.counts["books"] == 120
    book = oltp_factories.Book.create()
    assert book.author_id is not None
    n = oltp_conn.execute("SELECT count(*) FROM books").fetchone()[0]
    assert n == 121


def test_pristine_again(oltp_conn):
    assert oltp_conn.execute("SELECT count(*) FROM books").fetchone()[0] == 120
    assert oltp_conn.execute(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'pacientes'"
    ).fetchone()[0] == 0
"""


def test_pytester_suite_on_a_path_domain(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makeini(
        textwrap.dedent(
            f"""
            [pytest]
            seed_domain_path = {EXAMPLES}
            """
        )
    )
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-domain=library", "--seed-profile=SMALL", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["oltpseed: profile=SMALL domain=library *"])


def test_pytester_unknown_domain_is_a_usage_error(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makepyfile("def test_one(oltp_conn):\n    pass\n")
    result = pytester.runpytest_subprocess("--seed-domain=hospital,nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown --domain 'nope'" in "\n".join(result.errlines)


def test_two_domains_may_name_a_table_alike(
    tmp_path: Path, cli_env: dict[str, str], oltp_server: ServerInfo
) -> None:
    """A copy of the example under another name has the same tables: each is
    seeded and checked in its own database with its own factories; both at
    once is one line, exit 2."""
    twin = tmp_path / "library2"
    shutil.copytree(EXAMPLES / "library", twin)
    for path in twin.rglob("*.*"):
        path.write_text(path.read_text().replace("library", "library2"))
    factories = twin / "factories.py"  # the twin's own rule: no novels
    factories.write_text(factories.read_text().replace('"novel": 50', '"novel": 0'))
    checks = twin / "checks.py"
    checks.write_text(checks.read_text().replace("0.5,", "0.0,"))
    env = {**cli_env, "OLTPSEED_DOMAIN_PATH": f"{EXAMPLES}{os.pathsep}{tmp_path}"}
    for name in ("library", "library2"):
        with scratch_database(oltp_server) as dsn:
            for args in (
                ("init-db", "--domain", name),
                ("seed", "--domain", name, "--profile", "SMALL"),
                ("check", "--domain", name),
            ):
                done = run_cli(*args, "--dsn", dsn, env=env)
                assert done.returncode == 0, (args, done.stderr)
            with psycopg.connect(dsn) as conn:
                trigger = conn.execute(
                    "SELECT tgfoid::regproc::text FROM pg_trigger "
                    "WHERE tgname = 'books_updated_at'"
                ).fetchone()
                novels = conn.execute(
                    "SELECT count(*) FROM books WHERE genre = 'novel'"
                ).fetchone()[0]
            assert trigger == (f"{name}_updated_at",)
            assert (novels == 0) == (name == "library2")
    both = run_cli("counts", "--domain", "library,library2", env=env)
    assert both.returncode == 2
    assert "both have a table 'authors'" in both.stderr
