"""The stream commands: stream, pause, resume and report merge.

Pacing, workers, the ledger and the events runtime live in
:mod:`pytest_oltpseed.stream`; ``--verify-cdc`` borrows ``cdc verify``'s
reconciliation through :func:`pytest_oltpseed.cli.cdc.verify_and_print`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pytest_oltpseed.cli.cdc import verify_and_print
from pytest_oltpseed.cli.options import (
    DomainOption,
    DryRunOption,
    DsnOption,
    ForceOption,
    PauseFileOption,
    flag,
    out,
    say,
    writing_settings,
)


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
        flag(
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
    import secrets

    from pytest_oltpseed import cdc, db, logs
    from pytest_oltpseed.cli import render
    from pytest_oltpseed.domains import schema, select, tables_of
    from pytest_oltpseed.stream import events, workers
    from pytest_oltpseed.stream import runner as streaming
    from pytest_oltpseed.stream.ledger import check_outputs

    domains = select(domain)
    settings = writing_settings("stream", dsn, force, dry_run, seed_random=seed_random)
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
        render.print_stream_plan(settings, domains, mix, options)
        return
    logs.setup(settings.logging, console=True)
    conninfo = db.resolve_conninfo(settings, say)
    streamer = workers.make_stream(
        lambda: db.connect(conninfo, settings),
        domains,
        mix,
        options,
        setup=lambda conn: schema.ensure(conn, domains, say),
    )
    if not verify_cdc:
        try:
            streamer.run()
        finally:
            render.print_stream_summary(streamer)
        return
    with db.connect(conninfo, settings, autocommit=True) as conn:
        schema.ensure(conn, domains, say)
        # a name of the run's own: slot names are server-wide, so runs into two
        # databases of one server (or a `cdc start` of the default name) never
        # meet; the capture is dropped after the verdict
        name = f"oltpseed_verify_{secrets.token_hex(4)}"
        with cdc.capturing(
            conn, tables_of(domains), slot=name, publication=name
        ) as captured:
            say(
                f"capturing from LSN {captured.start} (slot {captured.slot}, "
                f"publication {captured.publication})"
            )
            try:
                streamer.run()
            finally:
                render.print_stream_summary(streamer)
            ok = verify_and_print(
                conn, streamer.report(), domains, captured.slot,
                captured.publication, changes=changes,
            )  # fmt: skip
        if not ok:
            raise typer.Exit(1)


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
    from pytest_oltpseed.errors import UsageError
    from pytest_oltpseed.stream import merging
    from pytest_oltpseed.stream import runner as streaming
    from pytest_oltpseed.stream.ledger import check_outputs, write_report

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


def pause(dsn: DsnOption = None, pause_file: PauseFileOption = None) -> None:
    """Pause running streams into the target database before their next cycle."""
    from pytest_oltpseed.stream import pausing

    path = _pause_sentinel(dsn, pause_file)
    created = pausing.pause(path)
    line = f"{'paused' if created else 'already paused'}: {path} (oltpseed resume)"
    out.print(line, soft_wrap=True)  # a path is never wrapped


def resume(dsn: DsnOption = None, pause_file: PauseFileOption = None) -> None:
    """Let paused streams into the target database go on."""
    from pytest_oltpseed.stream import pausing

    path = _pause_sentinel(dsn, pause_file)
    removed = pausing.resume(path)
    line = f"resumed: removed {path}" if removed else f"not paused: no {path}"
    out.print(line, soft_wrap=True)


def _pause_sentinel(dsn: str | None, pause_file: Path | None) -> Path:
    """The file given, else the target database's sentinel (needs a connection)."""
    from pytest_oltpseed import db
    from pytest_oltpseed.config import load_settings
    from pytest_oltpseed.stream import pausing

    settings = load_settings(dsn=dsn)
    explicit = pause_file or settings.stream.pause_file
    if explicit is not None:
        return explicit
    with db.session(settings, say) as conn:
        return pausing.database_sentinel(conn)
