"""The schema and data commands: init-db, reset, seed, counts and check.

Planning, COPY, guardrails and the rules checked live in the core
(:mod:`pytest_oltpseed.seed`, :mod:`pytest_oltpseed.domains.schema`,
:mod:`pytest_oltpseed.validators`); these parse, call and render.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from pytest_oltpseed.cli.options import (
    DomainOption,
    DryRunOption,
    DsnOption,
    ForceOption,
    ProfileOption,
    SeedRandomOption,
    flag,
    say,
    writing_settings,
)

if TYPE_CHECKING:
    import psycopg

    from pytest_oltpseed.config import Settings
    from pytest_oltpseed.domains import Domain
    from pytest_oltpseed.seed import seeder


def init_db(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Create tables, triggers, indexes and lookup rows (safe to run twice)."""
    _schema_command("init-db", domain, dsn, force, dry_run)


def _schema_command(
    action: str, domain: str, dsn: str | None, force: bool, dry_run: bool
) -> None:
    """init-db and ``reset --schema-only``: one schema operation, then counts."""
    from pytest_oltpseed import db, logs
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.domains import schema, select, tables_of

    domains = select(domain)
    operation = schema.OPERATIONS[action]
    settings = writing_settings(action, dsn, force, dry_run)
    if settings.dry_run:
        render.print_plan(action, settings, operation.plan(domains))
        return
    with db.session(settings, say) as conn:
        operation.apply(conn, domains)
        counts = db.table_counts(conn, tables_of(domains))
    logs.get().info(
        "%s: %s %s", action, operation.done, ", ".join(d.name for d in domains)
    )
    render.print_counts(domains, counts, title=f"{action}: {operation.done}")


def reset(
    domain: DomainOption = "all",
    profile: ProfileOption = None,
    seed_random: SeedRandomOption = None,
    dsn: DsnOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    schema_only: Annotated[
        bool, flag("--schema-only", help="Recreate the tables; seed nothing.")
    ] = False,
) -> None:
    """Drop oltpseed's own tables, recreate them and seed (your tables survive)."""
    from pytest_oltpseed import db
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.domains import schema, select
    from pytest_oltpseed.seed import seeder

    if schema_only:
        _schema_command("reset", domain, dsn, force, dry_run)
        return
    domains = select(domain)
    settings = writing_settings("reset", dsn, force, dry_run, profile, seed_random)
    if settings.dry_run:
        render.print_plan("reset", settings, schema.reset_plan(domains))
        render.print_seed_plan(settings, seeder.plan(domains, settings.profile))
        return
    with db.session(settings, say) as conn:
        schema.reset(conn, domains)
        _seed(conn, settings, seeder.plan(domains, settings.profile), domains)


def seed(
    profile: ProfileOption = None,
    domain: DomainOption = "all",
    seed_random: SeedRandomOption = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Run only these stages (tables, comma-separated): finishes an "
            "interrupted seed without inserting committed stages again.",
        ),
    ] = None,
    dsn: DsnOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Fill the tables at a volume profile (installs the schema when missing)."""
    from pytest_oltpseed import db
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.domains import schema, select
    from pytest_oltpseed.seed import seeder

    domains = select(domain)
    settings = writing_settings("seed", dsn, force, dry_run, profile, seed_random)
    stages = seeder.plan(domains, settings.profile, seeder.parse_only(only))
    if settings.dry_run:
        render.print_seed_plan(settings, stages)
        return
    with db.session(settings, say) as conn:
        schema.ensure(conn, domains, say)
        _seed(conn, settings, stages, domains)


def _seed(
    conn: psycopg.Connection,
    settings: Settings,
    stages: list[seeder.Stage],
    domains: list[Domain],
) -> None:
    """Run the stages with progress; an interrupt names what was committed."""
    from pytest_oltpseed import db, logs
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.domains import tables_of
    from pytest_oltpseed.errors import Interrupted
    from pytest_oltpseed.seed import seeder

    log = logs.get("seed")
    started = time.perf_counter()
    job = seeder.Seeder(
        conn,
        seed=settings.seed_random,
        as_of=settings.seed_as_of,
        workers=settings.seed_workers,
    )
    try:
        with render.seed_progress(stages) as progress:
            job.progress = progress
            results = job.run(stages)
    except KeyboardInterrupt:
        message = seeder.interrupted(stages, job.done)
        log.warning("seed %s: %s", settings.profile.name, message)
        raise Interrupted(message) from None
    elapsed = time.perf_counter() - started
    counts = db.table_counts(conn, tables_of(domains))
    render.print_seed_results(settings, results, counts, elapsed)
    log.info(
        "seed %s: %d rows in %.1fs",
        settings.profile.name,
        sum(r.written + sum(r.items.values()) for r in results),
        elapsed,
    )


def counts(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    as_json: Annotated[
        bool, flag("--json", help="Print {table: rows} as JSON.")
    ] = False,
) -> None:
    """Exact row count of every table (null/absent when not installed)."""
    from pytest_oltpseed import db
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.domains import select, tables_of

    domains = select(domain)
    settings = load_settings(dsn=dsn)
    with db.session(settings, say, autocommit=True) as conn:
        found = db.table_counts(conn, tables_of(domains))
    if as_json:
        render.print_json(found)
    else:
        render.print_counts(domains, found, title="row counts")


def check(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    as_json: Annotated[
        bool, flag("--json", help="Print the findings as JSON.")
    ] = False,
) -> None:
    """Check FKs, data rules, totals, stock and status mixes; exit 1 on a violation."""
    from pytest_oltpseed import db, validators
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.domains import select
    from pytest_oltpseed.errors import OltpseedError

    domains = select(domain)
    settings = load_settings(dsn=dsn)
    with db.session(settings, say) as conn:
        covered = validators.coverage(conn, domains, every=_is_all(domain))
        if covered.problem is None:
            findings = validators.check_database(conn, covered.domains)
        conn.rollback()
    if covered.problem is not None:
        raise OltpseedError(covered.problem)
    for note in covered.skipped:
        say(note)
    render.print_check(findings, as_json=as_json)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)


def _is_all(domain: str) -> bool:
    """Whether --domain named every domain (check then skips missing ones)."""
    from pytest_oltpseed.domains import ALL

    return domain.strip().lower() == ALL
