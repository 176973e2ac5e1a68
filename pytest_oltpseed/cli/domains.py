"""What oltpseed knows and keeps: domains, introspect, templates list/drop.

The registry, the introspection and the template janitor live in
:mod:`pytest_oltpseed.domains`, :mod:`pytest_oltpseed.introspect` and
:mod:`pytest_oltpseed.fixtures.janitor`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pytest_oltpseed.cli.options import (
    DryRunOption,
    DsnOption,
    ForceOption,
    flag,
    out,
    say,
    target,
    writing_settings,
)


def domains_command() -> None:
    """List the registered domains: name, tables, opt-in, where each came from."""
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.domains import registry

    render.print_domains(list(registry().values()))


def introspect_command(
    name: Annotated[
        str, typer.Option("--name", help="The domain's name (lower-case, digits, _).")
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write the package to DIR/NAME (a --domain-path directory).",
        ),
    ],
    dsn: DsnOption = None,
    schema: Annotated[
        list[str] | None,
        typer.Option(
            "--schema", help="A schema to read (repeatable: one domain covers all)."
        ),
    ] = None,
    table_filter: Annotated[
        list[str] | None,
        typer.Option(
            "--table-filter",
            metavar="PATTERN",
            help="Seed only tables matching PATTERN (shell style, repeatable).",
        ),
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            metavar="PATTERN=GENERATOR",
            help="A generator for columns whose table.column matches PATTERN, "
            "before the built-in name table (repeatable; docs/domains.md).",
        ),
    ] = None,
    base_rows: Annotated[
        int, typer.Option("--base-rows", help="MEDIUM rows of the largest table.")
    ] = 2000,
) -> None:
    """Write a domain package (SQL, factories, events, checks) from a live schema."""
    from pytest_oltpseed import db
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.introspect import introspect, redacted_command

    settings = load_settings(dsn=dsn)
    with db.session(settings, say, autocommit=True) as conn:
        written = introspect(
            conn,
            name=name,
            out=out_dir,
            schemas=schema or ("public",),
            table_filter=table_filter or (),
            rules=rule or (),
            base=base_rows,
            command=redacted_command(sys.argv[1:]),
        )
    for note in written.notes:
        say(f"note: {note}")
    out.print(
        f"wrote {written.package}: {len(written.tables)} tables "
        f"({', '.join(written.tables)}); MEDIUM {sum(written.volumes.values()):,} rows"
    )
    out.print(
        f"use it with: oltpseed --domain-path {written.package.parent} "
        f"init-db --domain {name}",
        soft_wrap=True,
    )


def templates_list(
    dsn: DsnOption = None,
    as_json: Annotated[
        bool, flag("--json", help="Print the templates as JSON.")
    ] = False,
) -> None:
    """Show oltpseed's templates on the server: owner, size, state."""
    from pytest_oltpseed import db
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.fixtures.janitor import Janitor

    settings = load_settings(dsn=dsn)
    found = Janitor.on(db.resolve_conninfo(settings, say)).templates()
    render.print_templates(found, as_json=as_json)


def templates_drop(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Templates to drop (default: all of yours)."),
    ] = None,
    dsn: DsnOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Drop oltpseed's templates owned by your role (the next run rebuilds them)."""
    from pytest_oltpseed import db
    from pytest_oltpseed.fixtures.janitor import Janitor

    settings = writing_settings("drop templates", dsn, force, dry_run)
    if settings.dry_run and settings.connection.conninfo is None:
        out.print(f"dry run: would drop your oltpseed templates on {target(settings)}")
        out.print("nothing was written")
        return
    janitor = Janitor.on(db.resolve_conninfo(settings, say))
    if settings.dry_run:
        chosen = janitor.drop_templates(names or (), dry_run=True)
        out.print(f"dry run: would drop {len(chosen)} template(s):")
        for name in chosen:
            out.print(f"  {name}")
        out.print("nothing was written")
        return
    dropped = janitor.drop_templates(names or ())
    out.print(f"dropped {len(dropped)} template(s)" if dropped else "nothing to drop")
    for name in dropped:
        out.print(f"  {name}")
