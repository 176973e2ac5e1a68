"""How the CLI shows results: rich tables, progress bars, summaries and JSON.

Apart from the commands so that a command reads as parse -> core -> render,
and so that what a user sees is decided in one place. Nothing here connects,
writes or decides an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pytest_oltpseed.cli.options import err, out, target

if TYPE_CHECKING:
    from pytest_oltpseed import validators
    from pytest_oltpseed.config import Settings
    from pytest_oltpseed.domains import Domain
    from pytest_oltpseed.fixtures.janitor import TemplateInfo
    from pytest_oltpseed.seed import seeder
    from pytest_oltpseed.stream import events, workers
    from pytest_oltpseed.stream import runner as streaming


def print_json(document: Any) -> None:
    """A JSON document on stdout (rich colours it on a terminal only)."""
    out.print_json(json.dumps(document))


def print_domains(domains: list[Domain]) -> None:
    table = Table(box=None, pad_edge=False)
    for column in ("domain", "tables", "in all", "source"):
        table.add_column(column)
    for domain in domains:
        table.add_row(
            domain.name,
            str(len(domain.tables)),
            "no (opt-in)" if domain.opt_in else "yes",
            domain.source,
        )
    out.print(table)


def print_plan(action: str, settings: Settings, files: list[Path]) -> None:
    out.print(
        f"dry run: {action} would apply, in one transaction, to {target(settings)}:"
    )
    for path in files:
        out.print(f"  {path.parent.name}/{path.name}")
    out.print("nothing was written")


def print_seed_plan(settings: Settings, stages: list[seeder.Stage]) -> None:
    profile = settings.profile
    table = Table(
        title=f"dry run: seed {profile.name} (seed {settings.seed_random}, "
        f"as of {settings.seed_as_of:%Y-%m-%d %H:%M} UTC) into "
        f"{target(settings)}",
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


@contextlib.contextmanager
def seed_progress(
    stages: list[seeder.Stage],
) -> Iterator[Callable[[seeder.Stage, int], None]]:
    """A bar per stage on a terminal; one plain line per finished stage otherwise."""
    if not err.is_terminal:

        def line(stage: seeder.Stage, done: int) -> None:
            if done >= stage.count:
                err.print(f"seed: {stage.table} {done:,}/{stage.count:,} rows")

        yield line
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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


def print_seed_results(
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


def print_findings(findings: list[validators.Finding]) -> None:
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


def print_counts(
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


def print_stream_plan(
    settings: Settings,
    domains: list[Domain],
    mix: events.Mix,
    options: streaming.StreamOptions,
) -> None:
    table = Table(
        title=f"dry run: stream into {target(settings)}", title_justify="left"
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
        f"+- {options.applied_jitter_ms()}ms"
    )
    bounds = [
        f"for {options.duration:g}s" if options.duration else "",
        f"at most {options.max_events} events" if options.max_events else "",
    ]
    out.print(f"{pace} {' and '.join(b for b in bounds if b) or 'until stopped'}")
    if options.clients > 1 or options.shard:
        from pytest_oltpseed.stream.runner import shard_label

        shard = f"shard {shard_label(options.shard)}, " if options.shard else ""
        out.print(f"{shard}{options.clients} client(s), the pace and bounds shared")
    for name, number in options.every:
        out.print(f"also {name} once every {number} batches")
    out.print("nothing was written")


def print_stream_summary(streamer: streaming.Streamer | workers.Pool) -> None:
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


def print_check(findings: list[validators.Finding], *, as_json: bool) -> None:
    """The verdict of ``oltpseed check``: every rule, then one summary line."""
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
        print_findings(findings)
        if broken:
            out.print(f"{len(broken)} of {len(findings)} rules violated")
        else:
            out.print(f"all {sum(f.checked for f in findings)} checked rules hold")


def print_templates(found: list[TemplateInfo], *, as_json: bool) -> None:
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
