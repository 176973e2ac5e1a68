"""``oltpseed cdc ...``: preflight, start, verify, stop and diff.

Slots, publications, decoding and the verdicts live in
:mod:`pytest_oltpseed.cdc`; these commands parse options, call it and hand
the answer to :mod:`pytest_oltpseed.cli.render_cdc`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pytest_oltpseed.cli.options import (
    DomainOption,
    DsnOption,
    ForceOption,
    PublicationOption,
    SlotOption,
    flag,
    out,
    say,
    writing_settings,
)
from pytest_oltpseed.names import PUBLICATION, SLOT

if TYPE_CHECKING:
    import psycopg

    from pytest_oltpseed.domains import Domain


def cdc_preflight(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    publication: Annotated[
        str,
        typer.Option(
            "--publication",
            help="The publication your connector uses (default: the one "
            "`oltpseed cdc start` creates; Debezium's own default is "
            "dbz_publication).",
        ),
    ] = PUBLICATION,
    as_json: Annotated[bool, flag("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check what a Debezium PostgreSQL connector needs; exit 1 if anything lacks."""
    from pytest_oltpseed import cdc, db
    from pytest_oltpseed.cli import render_cdc
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.domains import select, tables_of

    domains = select(domain)
    settings = load_settings(dsn=dsn)
    creates = ""
    if publication == PUBLICATION:  # ours: cdc start makes it (and marks it)
        creates = "oltpseed cdc start" + (
            f" --domain {domain}" if domain != "all" else ""
        )
    with db.session(settings, say, autocommit=True) as conn:
        checks = cdc.preflight(conn, tables_of(domains), publication, creates=creates)
    render_cdc.print_preflight(checks, as_json=as_json)
    if any(c.ok is False for c in checks):
        raise typer.Exit(1)


def cdc_start(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    slot: SlotOption = SLOT,
    publication: PublicationOption = PUBLICATION,
    plugin: Annotated[
        str, typer.Option("--plugin", help="pgoutput (default) or test_decoding.")
    ] = "pgoutput",
    force: ForceOption = False,
) -> None:
    """Create the publication and the slot: run it before `oltpseed stream`."""
    from pytest_oltpseed import cdc, db
    from pytest_oltpseed.domains import schema, select, tables_of

    domains = select(domain)
    settings = writing_settings("create a replication slot", dsn, force, False)
    with db.session(settings, say, autocommit=True) as conn:
        cdc.claim(conn, slot, publication, "reuse")  # before any DDL: nothing written
        schema.ensure(conn, domains, say)
        lsn = cdc.create(
            conn, tables_of(domains), slot=slot, publication=publication, plugin=plugin
        )
    out.print(
        f"slot {slot} ({plugin}) captures from LSN {lsn}; now stream with "
        "--report FILE, then: oltpseed cdc verify --report FILE"
    )
    out.print("the slot keeps WAL until verified or stopped (oltpseed cdc stop)")


def cdc_verify(
    report: Annotated[
        Path | None,
        typer.Option("--report", help="The JSON report of oltpseed stream."),
    ] = None,
    changes: Annotated[
        Path | None,
        typer.Option(
            "--changes",
            help="The changes file of oltpseed stream --changes: verify key by key.",
        ),
    ] = None,
    show: Annotated[
        int,
        typer.Option(
            "--show", min=0, help="List the first N differences of each kind."
        ),
    ] = 10,
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    slot: SlotOption = SLOT,
    publication: PublicationOption = PUBLICATION,
    keep: Annotated[
        bool, flag("--keep", help="Keep the slot and publication after.")
    ] = False,
    consume: Annotated[
        bool,
        flag(
            "--consume",
            help="Advance the slot past what was read (default: peek, the slot "
            "keeps its changes).",
        ),
    ] = False,
    as_json: Annotated[bool, flag("--json", help="Print the verdict as JSON.")] = False,
    force: ForceOption = False,
) -> None:
    """Reconcile what the slot captured with a stream's report (per table and
    operation) and/or its changes file (key by key); exit 1 on a difference.

    Only oltpseed's own slot and publication are consumed or dropped (exit 3
    otherwise); nothing is dropped when the verification could not run.
    """
    from pytest_oltpseed import cdc, db
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.domains import select

    domains = select(domain)
    document = cdc.read_inputs(report, changes)  # exit 2 before touching the slot
    use = cdc.SlotUse(slot, publication, keep=keep, consume=consume)
    if use.action is not None:
        settings = writing_settings(use.action, dsn, force, False)
    else:
        settings = load_settings(dsn=dsn)
    with (
        db.session(settings, say, autocommit=True) as conn,
        cdc.guarded(conn, use),
    ):
        ok = verify_and_print(
            conn, document, domains, slot, publication, as_json=as_json,
            consume=consume, changes=changes, show=show,
        )  # fmt: skip
    if not ok:
        raise typer.Exit(1)


def verify_and_print(
    conn: psycopg.Connection,
    document: dict[str, Any] | None,
    domains: list[Domain],
    slot: str,
    publication: str,
    *,
    as_json: bool = False,
    consume: bool = False,
    changes: Path | None = None,
    show: int = 10,
) -> bool:
    """Verify and print the verdict; whether it passed."""
    from pytest_oltpseed import cdc
    from pytest_oltpseed.cli import render_cdc
    from pytest_oltpseed.domains import tables_of

    done = cdc.verify(
        conn,
        document,
        tables_of(domains),
        slot=slot,
        publication=publication,
        consume=consume,
        changes=changes,
        show=show,
    )
    render_cdc.print_verification(done, as_json=as_json, show=show)
    if document is not None and document.get("cdc_tagged") is False:
        say("warning: the stream did not tag its batches (wal_level was not logical)")
    return done.ok


def cdc_stop(
    dsn: DsnOption = None,
    slot: SlotOption = SLOT,
    publication: PublicationOption = PUBLICATION,
    force: ForceOption = False,
) -> None:
    """Drop oltpseed's slot and publication (a forgotten slot keeps WAL forever);
    someone else's are refused (exit 3)."""
    from pytest_oltpseed import cdc, db

    settings = writing_settings(f"drop replication slot {slot}", dsn, force, False)
    with db.session(settings, say, autocommit=True) as conn:
        dropped = cdc.drop(conn, slot=slot, publication=publication)
    out.print("dropped " + ", ".join(dropped) if dropped else "nothing to drop")


def cdc_diff(
    expected: Annotated[
        Path,
        typer.Option(
            "--expected", help="The changes file the stream wrote (--changes)."
        ),
    ],
    actual: Annotated[
        Path,
        typer.Option(
            "--actual",
            help="The pipeline's Debezium JSON events, one message value a line.",
        ),
    ],
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Examples listed per kind.")
    ] = 10,
    as_json: Annotated[
        bool, flag("--json", help="Print the differences as JSON.")
    ] = False,
) -> None:
    """Set what a pipeline delivered against what the stream committed, key by
    key (exit 1 on a missing, duplicated, unexpected or reordered change)."""
    from pytest_oltpseed.cdc import diff as sink_diff
    from pytest_oltpseed.cli import render_cdc

    found = sink_diff.diff(expected, actual, limit=limit)
    render_cdc.print_diff_result(found, as_json=as_json)
    if not found.ok:
        raise typer.Exit(1)
