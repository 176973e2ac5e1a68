"""How the CLI shows CDC answers: preflight checks, verify verdicts (per table
and key by key) and sink diffs, as tables or JSON.

Apart from :mod:`pytest_oltpseed.cli.render` only to keep each module short;
the same rule holds: nothing here reads a slot or decides an exit code.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from rich.table import Table

from pytest_oltpseed import cdc
from pytest_oltpseed.cdc import diff as sink_diff
from pytest_oltpseed.cdc.shards import ShardLine
from pytest_oltpseed.cli.options import out


def print_preflight(checks: list[cdc.Check], *, as_json: bool) -> None:
    missing = [c for c in checks if c.ok is False]
    if as_json:
        document = {
            "ok": not missing,
            "checks": [dataclasses.asdict(c) for c in checks],
        }
        out.print_json(json.dumps(document))
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


def print_verification(
    done: cdc.Verification, *, as_json: bool = False, show: int = 10
) -> None:
    """The verdict of ``cdc verify`` (or ``stream --verify-cdc``)."""
    if as_json:
        shown: dict[str, Any] = done.verdict.as_dict() if done.verdict else {}
        if done.keys is not None:
            shown["keys"] = done.keys.as_dict()
        if done.shards is not None:
            shown["shards"] = [line.as_dict() for line in done.shards]
        shown["ok"] = done.ok
        out.print_json(json.dumps(shown))
        return
    if done.verdict is not None:
        print_verdict(done.verdict)
    if done.keys is not None:
        print_keys(done.keys, show)
    if done.shards is not None:
        print_shards(done.shards)
    out.print(
        f"decoded {done.changes:,} changes in {done.transactions:,} transactions "
        f"in {done.seconds:.2f}s ({done.rate:,.0f} changes/s)"
    )


def print_shards(lines: list[ShardLine]) -> None:
    table = Table(title="cdc verify, per shard", title_justify="left")
    for column in ShardLine.COLUMNS:
        table.add_column(column, justify="left" if column == "shard" else "right")
    for line in lines:
        table.add_row(*line.cells(), style=None if line.ok else "bold red")
    out.print(table)


def print_keys(keys: cdc.KeyVerdict, show: int) -> None:
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


def print_verdict(verdict: cdc.Verdict) -> None:
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


def print_diff(found: sink_diff.Diff) -> None:
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


def print_diff_result(found: sink_diff.Diff, *, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(found.as_dict()))
    else:
        print_diff(found)
