"""``oltpseed``: a thin Typer shell over the core modules.

Each command parses options, calls the core, and renders the result; rules
(precedence, guardrails, SQL, servers) live in the modules it calls. Errors
from the core become one line on stderr and the contract's exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pytest_oltpseed import __version__, cdc, db, logs, validators
from pytest_oltpseed.cdc import diff as sink_diff
from pytest_oltpseed.cdc.shards import ShardLine
from pytest_oltpseed.config import Settings, describe, load_settings
from pytest_oltpseed.console import Output
from pytest_oltpseed.domains import (
    ALL,
    Domain,
    registry,
    schema,
    select,
    tables_of,
    use_paths,
)
from pytest_oltpseed.errors import (
    Interrupted,
    OltpseedError,
    ServerError,
    UsageError,
)
from pytest_oltpseed.fixtures.janitor import Janitor
from pytest_oltpseed.seed import seeder
from pytest_oltpseed.server.embedded import EmbeddedServer
from pytest_oltpseed.stream import events, merging, pausing, workers
from pytest_oltpseed.stream import runner as streaming
from pytest_oltpseed.stream.ledger import check_outputs, write_report

app = typer.Typer(
    name="oltpseed",
    help="Seed PostgreSQL with realistic, FK-consistent OLTP data and stream changes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
server_app = typer.Typer(
    help="The embedded PostgreSQL server (private cluster, wal_level=logical).",
    no_args_is_help=True,
)
app.add_typer(server_app, name="server")
cdc_app = typer.Typer(
    help="Capture the stream's changes through logical decoding and reconcile them.",
    no_args_is_help=True,
)
app.add_typer(cdc_app, name="cdc")
templates_app = typer.Typer(
    help="The seeded template databases the pytest plugin keeps on a --seed-dsn "
    "server.",
    no_args_is_help=True,
)
app.add_typer(templates_app, name="templates")
report_app = typer.Typer(
    help="Stream reports and changes files of several runs (--shard) as one.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")


def _flag(*names: str, **kwargs: Any) -> Any:
    """An on/off option shown as a plain flag (Typer labels it ``<bool>`` and
    then rejects ``--flag true``; the label is what misleads)."""
    return typer.Option(*names, metavar="", **kwargs)


out = Output()
err = Output(stderr=True)

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL URL or conninfo; beats DATABASE_URL/PG_*."),
]
DomainOption = Annotated[
    str,
    typer.Option(
        "--domain",
        help="A registered domain (oltpseed domains), a comma-separated list, or "
        "all (every domain that is not opt-in, such as cdclab).",
    ),
]
ForceOption = Annotated[
    bool,
    _flag("--force", help="Write even when APP_ENV is production-like."),
]
DryRunOption = Annotated[
    bool, _flag("--dry-run", help="Print the plan; write nothing.")
]


def _say(line: str) -> None:
    # markup off: a line may quote brackets ("[ui]", a conninfo) that rich eats
    err.print(f"oltpseed: {line}", soft_wrap=True, markup=False)


def _version(value: bool) -> None:
    if value:
        out.print(f"oltpseed {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        _flag(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    domain_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--domain-path",
            metavar="DIR",
            help="Also load domains from DIR (repeatable; after "
            "OLTPSEED_DOMAIN_PATH). Give it before the command.",
        ),
    ] = None,
) -> None:
    """Seed PostgreSQL with realistic, FK-consistent OLTP data and stream changes."""
    use_paths(domain_path or ())


@app.command("domains")
def domains_command() -> None:
    """List the registered domains: name, tables, opt-in, where each came from."""
    table = Table(box=None, pad_edge=False)
    for column in ("domain", "tables", "in all", "source"):
        table.add_column(column)
    for domain in registry().values():
        table.add_row(
            domain.name,
            str(len(domain.tables)),
            "no (opt-in)" if domain.opt_in else "yes",
            domain.source,
        )
    out.print(table)


def _writing_settings(
    action: str,
    dsn: str | None,
    force: bool,
    dry_run: bool,
    profile: str | None = None,
    seed_random: int | None = None,
) -> Settings:
    settings = load_settings(
        dsn=dsn,
        force=force,
        dry_run=dry_run,
        seed_size=profile,
        seed_random=seed_random,
    )
    for warning in settings.profile.warnings:
        _say(f"warning: {warning}")
    refused = settings.refusal(action)
    if settings.dry_run and refused is not None:
        _say(f"dry run only: the real run would stop here ({refused})")
    if not settings.dry_run:
        settings.guard_write(action)
        logs.setup(settings.logging, console=False)
        for warning in settings.profile.warnings:
            logs.get().warning(warning)
    return settings


def _target(settings: Settings) -> str:
    if settings.connection.conninfo is None:
        return "the embedded server (not started by a dry run)"
    return describe(settings.connection.conninfo)


def _print_plan(action: str, settings: Settings, files: list[Path]) -> None:
    out.print(
        f"dry run: {action} would apply, in one transaction, to {_target(settings)}:"
    )
    for path in files:
        out.print(f"  {path.parent.name}/{path.name}")
    out.print("nothing was written")


@app.command("init-db")
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
    domains = select(domain)
    operation = schema.OPERATIONS[action]
    settings = _writing_settings(action, dsn, force, dry_run)
    if settings.dry_run:
        _print_plan(action, settings, operation.plan(domains))
        return
    with db.session(settings, _say) as conn:
        operation.apply(conn, domains)
        counts = db.table_counts(conn, tables_of(domains))
    logs.get().info(
        "%s: %s %s", action, operation.done, ", ".join(d.name for d in domains)
    )
    _print_counts(domains, counts, title=f"{action}: {operation.done}")


ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="SMALL, MEDIUM, LARGE, STRESS or CUSTOM "
        "(default: SEED_SIZE, else MEDIUM).",
    ),
]
SeedRandomOption = Annotated[
    int | None,
    typer.Option(
        "--seed-random",
        min=0,
        help="Random seed (default: SEED_RANDOM, else 0); same seed, same data.",
    ),
]


@app.command()
def reset(
    domain: DomainOption = "all",
    profile: ProfileOption = None,
    seed_random: SeedRandomOption = None,
    dsn: DsnOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
    schema_only: Annotated[
        bool, _flag("--schema-only", help="Recreate the tables; seed nothing.")
    ] = False,
) -> None:
    """Drop oltpseed's own tables, recreate them and seed (your tables survive)."""
    if schema_only:
        _schema_command("reset", domain, dsn, force, dry_run)
        return
    domains = select(domain)
    settings = _writing_settings("reset", dsn, force, dry_run, profile, seed_random)
    if settings.dry_run:
        _print_plan("reset", settings, schema.reset_plan(domains))
        _print_seed_plan(settings, seeder.plan(domains, settings.profile))
        return
    with db.session(settings, _say) as conn:
        schema.reset(conn, domains)
        _seed(conn, settings, seeder.plan(domains, settings.profile), domains)


@app.command()
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
    domains = select(domain)
    settings = _writing_settings("seed", dsn, force, dry_run, profile, seed_random)
    stages = seeder.plan(domains, settings.profile, seeder.parse_only(only))
    if settings.dry_run:
        _print_seed_plan(settings, stages)
        return
    with db.session(settings, _say) as conn:
        schema.ensure(conn, domains, _say)
        _seed(conn, settings, stages, domains)


def _print_seed_plan(settings: Settings, stages: list[seeder.Stage]) -> None:
    profile = settings.profile
    table = Table(
        title=f"dry run: seed {profile.name} (seed {settings.seed_random}, "
        f"as of {settings.seed_as_of:%Y-%m-%d %H:%M} UTC) into "
        f"{_target(settings)}",
        title_justify="left",
    )
    for column in ("#", "table", "rows", "batch", "mode", "items"):
        table.add_column(
            column, justify="right" if column in ("#", "rows", "batch") else "left"
        )
    for number, stage in enumerate(stages, 1):
        table.add_row(
            str(number),
            stage.table,
            f"{stage.count:,}",
            str(stage.batch_size),
            "upsert (ON CONFLICT DO NOTHING)" if stage.idempotent else "insert",
            ", ".join(stage.item_tables),
        )
    out.print(table)
    out.print(
        "one transaction per stage; upsert = INSERT ... ON CONFLICT DO "
        "NOTHING on the natural key (reruns add nothing); nothing was written"
    )


def _seed(
    conn: psycopg.Connection,
    settings: Settings,
    stages: list[seeder.Stage],
    domains: list[Domain],
) -> None:
    log = logs.get("seed")
    started = time.perf_counter()
    job = seeder.Seeder(
        conn,
        seed=settings.seed_random,
        as_of=settings.seed_as_of,
        workers=settings.seed_workers,
    )
    try:
        with _progress(stages) as progress:
            job.progress = progress
            results = job.run(stages)
    except KeyboardInterrupt:
        message = seeder.interrupted(stages, job.done)
        log.warning("seed %s: %s", settings.profile.name, message)
        raise Interrupted(message) from None
    elapsed = time.perf_counter() - started
    counts = db.table_counts(conn, tables_of(domains))
    _print_seed_results(settings, results, counts, elapsed)
    log.info(
        "seed %s: %d rows in %.1fs",
        settings.profile.name,
        sum(r.written + sum(r.items.values()) for r in results),
        elapsed,
    )


@contextlib.contextmanager
def _progress(
    stages: list[seeder.Stage],
) -> Iterator[Callable[[seeder.Stage, int], None]]:
    """A bar per stage on a terminal; one plain line per finished stage otherwise."""
    if not err.is_terminal:

        def line(stage: seeder.Stage, done: int) -> None:
            if done >= stage.count:
                err.print(f"seed: {stage.table} {done:,}/{stage.count:,} rows")

        yield line
        return
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>14}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err) as bars:
        tasks = {
            s.table: bars.add_task(s.table, total=max(s.count, 1), rate="")
            for s in stages
        }
        starts: dict[str, float] = {}

        def update(stage: seeder.Stage, done: int) -> None:
            start = starts.setdefault(stage.table, time.perf_counter())
            rate = done / max(time.perf_counter() - start, 1e-6)
            bars.update(tasks[stage.table], completed=done, rate=f"{rate:,.0f} rows/s")

        yield update


def _print_seed_results(
    settings: Settings,
    results: list[seeder.StageResult],
    counts: dict[str, int | None],
    elapsed: float,
) -> None:
    table = Table(
        title=f"seeded {settings.profile.name} in {elapsed:.1f}s", title_justify="left"
    )
    for column in ("table", "written", "skipped", "rows now", "seconds", "rows/s"):
        table.add_column(column, justify="left" if column == "table" else "right")
    written = 0
    for result in results:
        entries = [(result.table, result.written, result.skipped)]
        entries += [(t, n, 0) for t, n in result.items.items()]
        for name, rows, skipped in entries:
            written += rows
            table.add_row(
                name,
                f"{rows:,}",
                f"{skipped:,}",
                f"{counts.get(name) or 0:,}",
                f"{result.seconds:.2f}",
                f"{(rows / result.seconds if result.seconds else 0):,.0f}",
            )
    out.print(table)
    out.print(
        f"{written:,} rows written in {elapsed:.1f}s "
        f"({written / max(elapsed, 1e-6):,.0f} rows/s)"
    )


@app.command("introspect")
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
        str, typer.Option("--schema", help="The schema to read.")
    ] = "public",
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
    from pytest_oltpseed.introspect import introspect, redacted_command

    settings = load_settings(dsn=dsn)
    with db.session(settings, _say, autocommit=True) as conn:
        written = introspect(
            conn,
            name=name,
            out=out_dir,
            schema=schema,
            table_filter=table_filter or (),
            rules=rule or (),
            base=base_rows,
            command=redacted_command(sys.argv[1:]),
        )
    for note in written.notes:
        _say(f"note: {note}")
    out.print(
        f"wrote {written.package}: {len(written.tables)} tables "
        f"({', '.join(written.tables)}); MEDIUM {sum(written.volumes.values()):,} rows"
    )
    out.print(
        f"use it with: oltpseed --domain-path {written.package.parent} "
        f"init-db --domain {name}",
        soft_wrap=True,
    )


@app.command()
def counts(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    as_json: Annotated[
        bool, _flag("--json", help="Print {table: rows} as JSON.")
    ] = False,
) -> None:
    """Exact row count of every table (null/absent when not installed)."""
    domains = select(domain)
    settings = load_settings(dsn=dsn)
    with db.session(settings, _say, autocommit=True) as conn:
        found = db.table_counts(conn, tables_of(domains))
    if as_json:
        out.print_json(json.dumps(found))
    else:
        _print_counts(domains, found, title="row counts")


@app.command()
def check(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    as_json: Annotated[
        bool, _flag("--json", help="Print the findings as JSON.")
    ] = False,
) -> None:
    """Check FKs, data rules, totals, stock and status mixes; exit 1 on a violation."""
    domains = select(domain)
    settings = load_settings(dsn=dsn)
    with db.session(settings, _say) as conn:
        covered = validators.coverage(conn, domains, every=_is_all(domain))
        if covered.problem is None:
            findings = validators.check_database(conn, covered.domains)
        conn.rollback()
    if covered.problem is not None:
        raise OltpseedError(covered.problem)
    for note in covered.skipped:
        _say(note)
    broken = [f for f in findings if not f.ok]
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "ok": not broken,
                    "rules": [dataclasses.asdict(f) for f in findings],
                }
            )
        )
    else:
        _print_findings(findings)
        if broken:
            out.print(f"{len(broken)} of {len(findings)} rules violated")
        else:
            out.print(f"all {sum(f.checked for f in findings)} checked rules hold")
    if broken:
        raise typer.Exit(1)


def _is_all(domain: str) -> bool:
    return domain.strip().lower() == ALL


def _print_findings(findings: list[validators.Finding]) -> None:
    table = Table(title="oltpseed check", title_justify="left")
    table.add_column("rule", ratio=None if out.plain else 3)
    table.add_column("violations", justify="right")
    table.add_column("example id", justify="right")
    table.add_column("note")
    for finding in findings:
        table.add_row(
            finding.rule,
            str(finding.violations) if finding.checked else "-",
            finding.example or "",
            finding.note,
            style=None if finding.ok else "bold red",
        )
    out.print(table)


def _print_counts(
    domains: list[Domain], counts: dict[str, int | None], *, title: str
) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("domain")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for domain in domains:
        for name in domain.tables:
            value = counts.get(name)
            table.add_row(
                domain.name, name, "not installed" if value is None else f"{value:,}"
            )
    out.print(table)


PauseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--pause-file",
        help="A sentinel file of your choosing (default: STREAM_PAUSE_FILE); "
        "without one, the target database's own sentinel, found from any "
        "directory.",
    ),
]


@app.command()
def stream(
    domain: DomainOption = "all",
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0,
            help="Seconds between cycles (default 2; 0 = flat out).",
        ),
    ] = None,
    jitter_ms: Annotated[
        int | None,
        typer.Option(
            "--jitter-ms", min=0, help="Random +- on each interval (default 400)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Events per transaction (default 50)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            help="Events per second on a fixed schedule; --interval is then ignored.",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.001, help="Stop after this many seconds."),
    ] = None,
    max_events: Annotated[
        int | None,
        typer.Option(
            "--max-events", min=1, help="Stop after N events (committed+skipped)."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write the JSON ledger here on every exit path."),
    ] = None,
    changes: Annotated[
        Path | None,
        typer.Option(
            "--changes",
            help="Write one JSON line per committed row change here (run, batch, "
            "xid, table, op, key), for `oltpseed cdc verify --changes`.",
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="Event weights, e.g. consulta=30,sale=0."),
    ] = None,
    every: Annotated[
        list[str] | None,
        typer.Option(
            "--every",
            metavar="EVENT:N",
            help="Also run EVENT once every N batches, weight 0 or not "
            "(e.g. bulk_load:20 for a 100k-row transaction); repeatable.",
        ),
    ] = None,
    progress: Annotated[
        float | None,
        typer.Option(
            "--progress", min=0, help="Seconds between progress lines (0 = none)."
        ),
    ] = None,
    pause_file: PauseFileOption = None,
    verify_cdc: Annotated[
        bool,
        _flag(
            "--verify-cdc",
            help="Capture the run through a logical slot, then reconcile it with "
            "the report, and key by key with --changes (exit 1 on a difference).",
        ),
    ] = False,
    seed_random: Annotated[
        int | None,
        typer.Option(
            "--seed-random",
            min=0,
            help="Seed of the event draws (default: a fresh one, logged and in "
            "the report); the same seed repeats a run's choices.",
        ),
    ] = None,
    clients: Annotated[
        int | None,
        typer.Option(
            "--clients",
            min=1,
            help="Concurrent connections, each a worker process (default 1); "
            "--rate and --max-events are the totals.",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="i/K: this run is shard i of K independent streams into one "
            "database (own random stream, run id names the shard); merge their "
            "files with `oltpseed report merge`.",
        ),
    ] = None,
    dsn: DsnOption = None,
    force: ForceOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Stream a realistic mix of inserts, updates and rare deletes until stopped."""
    domains = select(domain)
    settings = _writing_settings("stream", dsn, force, dry_run, seed_random=seed_random)
    mix = events.configured_mix(domains, settings.stream, weights)
    options = streaming.StreamOptions.from_settings(
        settings.stream,
        interval=interval,
        jitter_ms=jitter_ms,
        batch_size=batch_size,
        rate=rate,
        duration=duration,
        max_events=max_events,
        report=report,
        changes=changes,
        progress_s=progress,
        pause_file=pause_file,
        seed=seed_random if seed_random is not None else secrets.randbelow(2**31),
        pool_seed=settings.seed_random,
        floor=settings.seed_as_of,
        clients=clients,
        shard=streaming.parse_shard(shard) if shard is not None else None,
        every=events.parse_every(every) if every else None,
    )
    check_outputs(options.outputs())
    events.resolve_every(domains, options.every)  # unknown names: exit 2 now
    if settings.dry_run:
        _print_stream_plan(settings, domains, mix, options)
        return
    logs.setup(settings.logging, console=True)
    conninfo = db.resolve_conninfo(settings, _say)
    streamer = workers.make_stream(
        lambda: db.connect(conninfo, settings),
        domains,
        mix,
        options,
        setup=lambda conn: schema.ensure(conn, domains, _say),
    )
    if not verify_cdc:
        try:
            streamer.run()
        finally:
            _print_stream_summary(streamer)
        return
    with db.connect(conninfo, settings, autocommit=True) as conn:
        schema.ensure(conn, domains, _say)
        # a name of the run's own: slot names are server-wide, so runs into two
        # databases of one server (or a `cdc start` of the default name) never
        # meet; the capture is dropped after the verdict
        name = f"oltpseed_verify_{secrets.token_hex(4)}"
        with cdc.capturing(
            conn, tables_of(domains), slot=name, publication=name
        ) as captured:
            _say(
                f"capturing from LSN {captured.start} (slot {captured.slot}, "
                f"publication {captured.publication})"
            )
            try:
                streamer.run()
            finally:
                _print_stream_summary(streamer)
            ok = _verify(
                conn, streamer.report(), domains, captured.slot,
                captured.publication, changes=changes,
            )  # fmt: skip
        if not ok:
            raise typer.Exit(1)


def _print_stream_plan(
    settings: Settings,
    domains: list[Domain],
    mix: events.Mix,
    options: streaming.StreamOptions,
) -> None:
    table = Table(
        title=f"dry run: stream into {_target(settings)}", title_justify="left"
    )
    for column in ("domain", "event", "weight", "share", "tables", "what"):
        table.add_column(
            column, justify="right" if column in ("weight", "share") else "left"
        )
    for event, share in zip(mix.events, mix.shares().values(), strict=True):
        table.add_row(
            event.domain,
            event.name,
            str(event.weight),
            f"{share:.1%}",
            ", ".join(event.tables),
            event.description,
        )
    out.print(table)
    pace = (
        f"{options.rate:g} events/s, batches of up to {options.batch_size}"
        if options.rate
        else f"{options.batch_size} events every {options.interval:g}s "
        f"+- {options.jitter_ms}ms"
    )
    bounds = [
        f"for {options.duration:g}s" if options.duration else "",
        f"at most {options.max_events} events" if options.max_events else "",
    ]
    out.print(f"{pace} {' and '.join(b for b in bounds if b) or 'until stopped'}")
    if options.clients > 1 or options.shard:
        shard = (
            f"shard {streaming.shard_label(options.shard)}, " if options.shard else ""
        )
        out.print(f"{shard}{options.clients} client(s), the pace and bounds shared")
    for name, number in options.every:
        out.print(f"also {name} once every {number} batches")
    out.print("nothing was written")


def _print_stream_summary(streamer: streaming.Streamer | workers.Pool) -> None:
    document = streamer.report()
    events = document["events"]
    table = Table(
        title=f"stream {document['exit'].replace('_', ' ')}: "
        f"{events['committed']:,} events committed in {document['duration_s']:.1f}s "
        f"({document['events_per_s']:,.1f}/s)",
        title_justify="left",
    )
    for column in ("table", "inserted", "updated", "deleted", "rows now"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, ops in document["tables"].items():
        if any(ops.values()):
            table.add_row(
                name,
                f"{ops['insert']:,}",
                f"{ops['update']:,}",
                f"{ops['delete']:,}",
                f"{streamer.totals.get(name, 0):,}",
            )
    out.print(table)
    latency = document["latency_ms"]
    out.print(
        f"skipped {document['events']['skipped']:,}, reconnects "
        f"{document['reconnects']}, lost batches {document['lost']['batches']}, "
        f"latency p50/p95/p99 {latency['p50']:.1f}/{latency['p95']:.1f}/"
        f"{latency['p99']:.1f} ms"
        + (f"; report: {streamer.options.report}" if streamer.options.report else "")
    )


@report_app.command("merge")
def report_merge(
    reports: Annotated[
        list[Path], typer.Argument(help="Stream --report files (one per shard).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Write the merged report here.")
    ],
    changes: Annotated[
        list[Path] | None,
        typer.Option(
            "--changes",
            help="A shard's --changes file (repeat the option); merged in commit "
            "order into --changes-output.",
        ),
    ] = None,
    changes_output: Annotated[
        Path | None,
        typer.Option("--changes-output", help="Write the merged changes here."),
    ] = None,
) -> None:
    """Merge the ledgers of several stream runs (``--shard i/K``) into one."""
    if bool(changes) != (changes_output is not None):
        raise UsageError("give --changes files and --changes-output together")
    check_outputs({"-o": output, "--changes-output": changes_output})
    parts = [merging.read_report(path) for path in reports]
    extra: dict[str, Any] = {}
    if changes and changes_output is not None:
        lines = merging.merge_changes(changes, changes_output)
        extra["changes"] = {"path": str(changes_output), "lines": lines}
    document = merging.merge_reports(parts, streaming.new_run_id(), **extra)
    write_report(output, document)
    out.print(
        f"merged {len(parts)} report(s): {document['events']['committed']:,} events, "
        f"{len(document['runs'])} run(s) -> {output}"
        + (
            f"; {extra['changes']['lines']:,} changes -> {changes_output}"
            if extra
            else ""
        ),
        soft_wrap=True,
    )


@app.command()
def pause(dsn: DsnOption = None, pause_file: PauseFileOption = None) -> None:
    """Pause running streams into the target database before their next cycle."""
    path = _pause_sentinel(dsn, pause_file)
    created = pausing.pause(path)
    line = f"{'paused' if created else 'already paused'}: {path} (oltpseed resume)"
    out.print(line, soft_wrap=True)  # a path is never wrapped


@app.command()
def resume(dsn: DsnOption = None, pause_file: PauseFileOption = None) -> None:
    """Let paused streams into the target database go on."""
    path = _pause_sentinel(dsn, pause_file)
    removed = pausing.resume(path)
    line = f"resumed: removed {path}" if removed else f"not paused: no {path}"
    out.print(line, soft_wrap=True)


def _pause_sentinel(dsn: str | None, pause_file: Path | None) -> Path:
    """The file given, else the target database's sentinel (needs a connection)."""
    settings = load_settings(dsn=dsn)
    explicit = pause_file or settings.stream.pause_file
    if explicit is not None:
        return explicit
    with db.session(settings, _say) as conn:
        return pausing.database_sentinel(conn)


SlotOption = Annotated[str, typer.Option("--slot", help="Replication slot name.")]
PublicationOption = Annotated[
    str, typer.Option("--publication", help="Publication name.")
]


@cdc_app.command("preflight")
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
    ] = cdc.PUBLICATION,
    as_json: Annotated[bool, _flag("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check what a Debezium PostgreSQL connector needs; exit 1 if anything lacks."""
    domains = select(domain)
    settings = load_settings(dsn=dsn)
    with db.session(settings, _say, autocommit=True) as conn:
        checks = cdc.preflight(conn, tables_of(domains), publication)
    missing = [c for c in checks if c.ok is False]
    if as_json:
        document = {
            "ok": not missing,
            "checks": [dataclasses.asdict(c) for c in checks],
        }
        out.print_json(json.dumps(document))
        if missing:
            raise typer.Exit(1)
        return
    table = Table(title="oltpseed cdc preflight", title_justify="left")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    for check in checks:
        status = {True: "ok", False: "MISSING", None: "note"}[check.ok]
        style = "bold red" if check.ok is False else None
        table.add_row(check.name, status, check.detail, check.fix, style=style)
    out.print(table)
    out.print(
        f"{len(missing)} requirement(s) missing"
        if missing
        else "ready for a Debezium connector (plugin.name=pgoutput)"
    )
    if missing:
        raise typer.Exit(1)


@cdc_app.command("start")
def cdc_start(
    domain: DomainOption = "all",
    dsn: DsnOption = None,
    slot: SlotOption = cdc.SLOT,
    publication: PublicationOption = cdc.PUBLICATION,
    plugin: Annotated[
        str, typer.Option("--plugin", help="pgoutput (default) or test_decoding.")
    ] = "pgoutput",
    force: ForceOption = False,
) -> None:
    """Create the publication and the slot: run it before `oltpseed stream`."""
    domains = select(domain)
    settings = _writing_settings("create a replication slot", dsn, force, False)
    with db.session(settings, _say, autocommit=True) as conn:
        cdc.claim(conn, slot, publication, "reuse")  # before any DDL: nothing written
        schema.ensure(conn, domains, _say)
        lsn = cdc.create(
            conn, tables_of(domains), slot=slot, publication=publication, plugin=plugin
        )
    out.print(
        f"slot {slot} ({plugin}) captures from LSN {lsn}; now stream with "
        "--report FILE, then: oltpseed cdc verify --report FILE"
    )
    out.print("the slot keeps WAL until verified or stopped (oltpseed cdc stop)")


@cdc_app.command("verify")
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
    slot: SlotOption = cdc.SLOT,
    publication: PublicationOption = cdc.PUBLICATION,
    keep: Annotated[
        bool, _flag("--keep", help="Keep the slot and publication after.")
    ] = False,
    consume: Annotated[
        bool,
        _flag(
            "--consume",
            help="Advance the slot past what was read (default: peek, the slot "
            "keeps its changes).",
        ),
    ] = False,
    as_json: Annotated[
        bool, _flag("--json", help="Print the verdict as JSON.")
    ] = False,
    force: ForceOption = False,
) -> None:
    """Reconcile what the slot captured with a stream's report (per table and
    operation) and/or its changes file (key by key); exit 1 on a difference.

    Only oltpseed's own slot and publication are consumed or dropped (exit 3
    otherwise); nothing is dropped when the verification could not run.
    """
    domains = select(domain)
    if report is None and changes is None:
        raise UsageError("nothing to verify against: give --report, --changes or both")
    document: dict[str, Any] | None = None
    if report is not None:
        try:
            document = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read --report {report}: {exc}") from None
        cdc.parse_report(document or {})  # exit 2 before touching the slot
    writes = consume or not keep
    if writes:
        what = "consume" if consume else "drop"
        settings = _writing_settings(
            f"{what} replication slot {slot} (--keep without --consume only reads)",
            dsn,
            force,
            False,
        )
    else:
        settings = load_settings(dsn=dsn)
    with db.session(settings, _say, autocommit=True) as conn:
        if writes:  # refuse someone else's slot before reading anything
            cdc.claim(conn, slot, publication, "consume" if consume else "drop")
        ok = _verify(
            conn, document, domains, slot, publication, as_json=as_json,
            consume=consume, changes=changes, show=show,
        )  # fmt: skip
        if not keep:  # the verification ran: its capture has served
            cdc.drop(conn, slot=slot, publication=publication)
    if not ok:
        raise typer.Exit(1)


def _verify(
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
    if as_json:
        shown: dict[str, Any] = done.verdict.as_dict() if done.verdict else {}
        if done.keys is not None:
            shown["keys"] = done.keys.as_dict()
        if done.shards is not None:
            shown["shards"] = [line.as_dict() for line in done.shards]
        shown["ok"] = done.ok
        out.print_json(json.dumps(shown))
    else:
        if done.verdict is not None:
            _print_verdict(done.verdict)
        if done.keys is not None:
            _print_keys(done.keys, show)
        if done.shards is not None:
            _print_shards(done.shards)
        out.print(
            f"decoded {done.changes:,} changes in {done.transactions:,} transactions "
            f"in {done.seconds:.2f}s ({done.rate:,.0f} changes/s)"
        )
    if document is not None and document.get("cdc_tagged") is False:
        _say("warning: the stream did not tag its batches (wal_level was not logical)")
    return done.ok


def _print_keys(keys: cdc.KeyVerdict, show: int) -> None:
    table = Table(
        title="cdc verify, key by key: "
        + (
            f"all {keys.expected:,} expected changes seen once, in order"
            if keys.ok
            else "DIFFERENCES"
        ),
        title_justify="left",
    )
    columns = ("table", "op", "expected", "seen", "missing", "duplicated", "extra",
               "reordered")  # fmt: skip
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("table", "op") else "right"
        )
    for line in keys.lines:
        table.add_row(
            line.table,
            line.op,
            *(
                f"{n:,}"
                for n in (
                    line.expected,
                    line.seen,
                    line.missing,
                    line.duplicate,
                    line.extra,
                    line.reordered,
                )
            ),
            style=None if line.ok else "bold red",
        )
    out.print(table)
    for kind, found in keys.issues.items():
        total = keys.totals[kind]
        out.print(f"{kind}: {total:,}" + (f" (first {len(found)})" if show else ""))
        for issue in found:
            times = f" x{issue.times}" if issue.times > 1 else ""
            batch = f"batch {issue.batch}" if issue.batch is not None else "untagged"
            out.print(
                f"  {issue.table} {issue.op} {json.dumps(issue.key, default=str)} "
                f"{batch} xid {issue.xid}{times}",
                soft_wrap=True,
            )


def _print_shards(lines: list[ShardLine]) -> None:
    table = Table(title="cdc verify, per shard", title_justify="left")
    for column in ShardLine.COLUMNS:
        table.add_column(column, justify="left" if column == "shard" else "right")
    for line in lines:
        table.add_row(*line.cells(), style=None if line.ok else "bold red")
    out.print(table)


def _print_verdict(verdict: cdc.Verdict) -> None:
    table = Table(
        title=f"cdc verify: run {verdict.run_id}: "
        + ("every committed change captured once" if verdict.ok else "DIFFERENCES"),
        title_justify="left",
    )
    for column in ("table", "op", "report", "captured", "out of band", "note"):
        table.add_column(
            column, justify="left" if column in ("table", "op") else "right"
        )
    for line in verdict.lines:
        if not (line.reported or line.captured or line.extra):
            continue
        note = ""
        if line.captured > line.reported:
            note = "missing from the report"
        elif line.captured < line.reported:
            note = "missing from the change stream"
        if line.extra:
            note = ", ".join(filter(None, [note, "changed outside the stream"]))
        table.add_row(
            line.table,
            line.op,
            f"{line.reported:,}",
            f"{line.captured:,}",
            f"{line.extra:,}",
            note,
            style=None if line.ok else "bold red",
        )
    out.print(table)
    out.print(
        f"batches: {verdict.batches_reported:,} in the report, "
        f"{verdict.batches_captured:,} captured"
        + (f"; seen twice: {verdict.repeated[:10]}" if verdict.repeated else "")
        + (
            f"; out of commit order: {verdict.out_of_order[:10]}"
            if verdict.out_of_order
            else ""
        )
        + (
            f"; {len(verdict.other_transactions)} transaction(s) outside the stream "
            f"(xids {verdict.other_transactions[:5]})"
            if verdict.other_transactions
            else ""
        )
    )


@cdc_app.command("stop")
def cdc_stop(
    dsn: DsnOption = None,
    slot: SlotOption = cdc.SLOT,
    publication: PublicationOption = cdc.PUBLICATION,
    force: ForceOption = False,
) -> None:
    """Drop oltpseed's slot and publication (a forgotten slot keeps WAL forever);
    someone else's are refused (exit 3)."""
    settings = _writing_settings(f"drop replication slot {slot}", dsn, force, False)
    with db.session(settings, _say, autocommit=True) as conn:
        dropped = cdc.drop(conn, slot=slot, publication=publication)
    out.print("dropped " + ", ".join(dropped) if dropped else "nothing to drop")


@templates_app.command("list")
def templates_list(
    dsn: DsnOption = None,
    as_json: Annotated[
        bool, _flag("--json", help="Print the templates as JSON.")
    ] = False,
) -> None:
    """Show oltpseed's templates on the server: owner, size, state."""
    settings = load_settings(dsn=dsn)
    found = Janitor.on(db.resolve_conninfo(settings, _say)).templates()
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(t) for t in found]))
        return
    table = Table(title="oltpseed templates", title_justify="left")
    for column in ("name", "owner", "size", "state"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for info in found:
        table.add_row(
            info.name,
            info.owner,
            f"{info.size / 2**20:,.0f} MB",
            "ready" if info.ready else "incomplete",
        )
    out.print(table)
    total = sum(t.size for t in found if t.mine)
    out.print(f"{total / 2**20:,.0f} MB in templates you own (oltpseed templates drop)")


@templates_app.command("drop")
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
    settings = _writing_settings("drop templates", dsn, force, dry_run)
    if settings.dry_run and settings.connection.conninfo is None:
        out.print(f"dry run: would drop your oltpseed templates on {_target(settings)}")
        out.print("nothing was written")
        return
    janitor = Janitor.on(db.resolve_conninfo(settings, _say))
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


@cdc_app.command("diff")
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
        bool, _flag("--json", help="Print the differences as JSON.")
    ] = False,
) -> None:
    """Set what a pipeline delivered against what the stream committed, key by
    key (exit 1 on a missing, duplicated, unexpected or reordered change)."""
    found = sink_diff.diff(expected, actual, limit=limit)
    if as_json:
        out.print_json(json.dumps(found.as_dict()))
    else:
        _print_diff(found)
    if not found.ok:
        raise typer.Exit(1)


def _print_diff(found: sink_diff.Diff) -> None:
    totals = found.totals()
    table = Table(
        title="cdc diff: "
        + ("every committed change delivered once" if found.ok else "DIFFERENCES"),
        title_justify="left",
    )
    columns = ("table", "op", "expected", "delivered", "missing", "duplicated",
               "unexpected", "reordered", "redelivered")  # fmt: skip
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("table", "op") else "right"
        )
    for tally in sorted(
        found.tallies.values(), key=lambda t: (t.table, cdc.OPS.index(t.op))
    ):
        table.add_row(
            tally.table,
            tally.op,
            *(f"{getattr(tally, c):,}" for c in columns[2:]),
            style=None if tally.ok else "bold red",
        )
    out.print(table)
    for kind, examples in found.examples.items():
        if not examples:
            continue
        out.print(f"{kind} ({totals[kind]:,}), first {len(examples)}:")
        for example in examples:
            where = ", ".join(
                f"{name} {value}"
                for name, value in (
                    ("batch", example.batch),
                    ("xid", example.xid),
                    ("sink line", example.line),
                )
                if value is not None
            )
            key = json.dumps(example.key, ensure_ascii=False)
            out.print(f"  {example.table} {example.op} {key} ({where})")
    extras = [
        f"{found.key_changes:,} key change(s) delivered as delete + create"
        if found.key_changes
        else "",
        f"{found.snapshot:,} snapshot read(s) not compared" if found.snapshot else "",
        f"{found.skipped:,} tombstone/metadata line(s) skipped"
        if found.skipped
        else "",
    ]
    out.print(
        f"{found.expected_lines:,} expected changes, {found.actual_lines:,} sink lines"
        + "".join(f"; {e}" for e in extras if e)
    )


@app.command()
def ui(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (default: loopback).")
    ] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port (default: a free one)."),
    ] = None,
    open_browser: Annotated[
        bool, _flag("--open", help="Open the page in the default browser.")
    ] = False,
    dsn: DsnOption = None,
    force: ForceOption = False,
) -> None:
    """Serve a local page to seed, stream, watch and verify (needs the ui extra)."""
    from pytest_oltpseed import ui as web

    web.serve(
        host=host,
        port=port,
        open_browser=open_browser,
        dsn=dsn,
        force=force,
        say=_say,
        show_url=lambda url: out.print(f"oltpseed ui: {url}", soft_wrap=True),
    )


@server_app.command("start")
def server_start() -> None:
    """Start the embedded server, or reuse it when it already runs."""
    info, started = EmbeddedServer().start()
    out.print(f"{'started' if started else 'already running'}: {info.url}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the embedded server (its data is kept for the next start)."""
    stopped = EmbeddedServer().stop()
    out.print("stopped" if stopped else "not running")


@server_app.command("status")
def server_status() -> None:
    """Say whether the embedded server runs (exit 0) or not (exit 1)."""
    server = EmbeddedServer()
    info = server.status()
    if info is None:
        out.print(f"not running (data directory: {server.home})")
        raise typer.Exit(1)
    out.print(f"running: {info.url} (data directory: {info.datadir})")


@server_app.command("dsn")
def server_dsn() -> None:
    """Print the embedded server's URL, for DATABASE_URL or psql."""
    info = EmbeddedServer().status()
    if info is None:
        raise ServerError("the embedded server is not running: oltpseed server start")
    out.print(info.url, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app; map errors to one line and an exit code."""
    code: object = 0
    try:
        code = app(args=argv, prog_name="oltpseed", standalone_mode=False)
    except typer.TyperException as exc:
        _usage_failed(exc)
    except OltpseedError as exc:
        _fail(str(exc), exc.exit_code)
    except psycopg.OperationalError as exc:
        _fail(f"database connection failed: {db.first_line(exc)}", 1)
    except psycopg.Error as exc:
        _fail(f"database error: {db.first_line(exc)}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_failed(exc: typer.TyperException) -> None:
    """A usage error from the option parser as the README's one line, not a
    boxed panel; a bare group (``oltpseed cdc``) still shows its help."""
    ctx = getattr(exc, "ctx", None)
    code = int(getattr(exc, "exit_code", 2))
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        out.print(ctx.get_help(), soft_wrap=True)
        sys.exit(code)
    message = db.first_line(Exception(exc.format_message()))
    hint = f" (see: {ctx.command_path} -h)" if ctx is not None else ""
    _fail(message[:1].lower() + message[1:] + hint, code)


def _fail(message: str, code: int) -> None:
    err.print(f"oltpseed: error: {message}", soft_wrap=True, markup=False)
    sys.exit(code)
