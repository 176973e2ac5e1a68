"""Merged ledgers: the reports and changes files of several streams as one.

``stream --clients N`` writes one part per client and merges them here at the
end; ``oltpseed report merge`` does the same for the files of ``--shard i/K``
runs on several hosts. A merged report keeps every part's run id in ``runs``
(run id -> batches), which is what ``cdc verify`` matches the WAL tags
against, and the parts themselves in ``parts``.

Changes files are merged in commit order: every line of a file that will be
merged carries ``at``, the wall clock just before its batch's COMMIT. Two
batches that change the same row cannot both hold its lock, so the later one
took its ``at`` after the earlier one committed: ordering batches by ``at``
is commit order for every key (exact on one host; across hosts as good as
their clocks are synchronised).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_oltpseed.cdc.verify import runs_of
from pytest_oltpseed.errors import OltpseedError, UsageError

_SUMMED = ("reconnects", "batches", "retried_batches")
_EXITS = ("failed", "gave_up", "aborted", "client_killed", "stopped", "completed")


def read_report(path: Path) -> dict[str, Any]:
    """A stream report; one line (exit 2) when it is unreadable or not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read report {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise UsageError(f"{path}: not JSON (give a stream --report file)") from None
    if not isinstance(document, dict) or not {"run_id", "tables"} <= set(document):
        raise UsageError(f"{path}: not a stream report (no run_id or tables)")
    return document


def merge_reports(
    parts: Sequence[Mapping[str, Any]], run_id: str, **extra: Any
) -> dict[str, Any]:
    """One report for concurrent streams: counts summed, rates added (the
    parts ran side by side), latency and lag percentiles the worst part's (an
    upper bound: percentiles of parts do not add up), ``exit`` the worst."""
    if not parts:
        raise UsageError("nothing to merge: give at least one report")
    runs: dict[str, int] = {}
    for part in parts:
        for run, batches in runs_of(part).items():
            if run in runs:
                raise UsageError(f"run {run} is in two of the reports to merge")
            runs[run] = batches
    tables: dict[str, Counter[str]] = {}
    events: dict[str, Any] = {"committed": 0, "skipped": 0}
    by_type: Counter[str] = Counter()
    skipped_by_type: Counter[str] = Counter()
    summed: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    settled: Counter[str] = Counter()
    for part in parts:
        for table, ops in part["tables"].items():
            tables.setdefault(table, Counter()).update(ops)
        ev = part.get("events", {})
        events["committed"] += ev.get("committed", 0)
        events["skipped"] += ev.get("skipped", 0)
        by_type.update(ev.get("by_type", {}))
        skipped_by_type.update(ev.get("skipped_by_type", {}))
        summed.update({k: part.get(k, 0) for k in _SUMMED})
        lost.update(part.get("lost", {}))
        settled.update(part.get("settled_commits", {}))
    events["by_type"] = dict(sorted(by_type.items()))
    events["skipped_by_type"] = dict(sorted(skipped_by_type.items()))
    exits = [str(p.get("exit", "completed")) for p in parts]
    first = parts[0]
    document = {
        **{k: v for k, v in first.items() if k not in ("changes", "shard", "parts")},
        "tables": {t: dict(ops) for t, ops in tables.items()},
        "events": events,
        **{k: summed[k] for k in _SUMMED},
        "duration_s": max(float(p.get("duration_s", 0)) for p in parts),
        "events_per_s": round(sum(float(p.get("events_per_s", 0)) for p in parts), 2),
        "latency_ms": _worst(p.get("latency_ms", {}) for p in parts),
        "lag_ms": _worst(p.get("lag_ms", {}) for p in parts),
        "lost": {"batches": lost["batches"], "events": lost["events"]},
        "settled_commits": dict(settled),
        "paused_s": max(float(p.get("paused_s", 0)) for p in parts),
        "setup_s": max(float(p.get("setup_s", 0)) for p in parts),
        "run_id": run_id,
        "runs": runs,
        "started_at": min(str(p.get("started_at", "")) for p in parts),
        "exit": min(exits, key=lambda e: _EXITS.index(e) if e in _EXITS else 0),
        "error": "; ".join(str(p["error"]) for p in parts if p.get("error")),
        "parts": [_part(p) for p in parts],
        **extra,
    }
    return document


def _part(report: Mapping[str, Any]) -> dict[str, Any]:
    """What a merged report keeps of each part (its own parts, when merged)."""
    if "parts" in report:
        return {"run_id": report["run_id"], "parts": report["parts"]}
    keep = ("run_id", "shard", "client", "exit", "error", "batches", "events_per_s")
    return {
        **{k: report[k] for k in keep if k in report},
        "committed": report.get("events", {}).get("committed", 0),
        # row changes: what ``cdc verify`` expects of this part's shard
        "rows": sum(sum(ops.values()) for ops in report.get("tables", {}).values()),
    }


def _worst(summaries: Any) -> dict[str, float]:
    worst: dict[str, float] = {}
    for summary in summaries:
        for key, value in summary.items():
            worst[key] = max(worst.get(key, 0.0), float(value))
    return worst


def merge_changes(parts: Sequence[Path], out: Path) -> int:
    """Merge changes files into ``out`` in commit order (module doc); returns
    the lines written. Written to a temporary file, then renamed: a reader
    never sees half a merge."""
    streams = [_batches(path, n) for n, path in enumerate(parts)]
    special = out.exists() and not out.is_file()  # a pipe, /dev/stdout: in place
    target = out if special else out.with_name(f".{out.name}.merge.tmp")
    lines = 0
    try:
        with target.open("w", encoding="utf-8") as handle:
            for _, _, batch in heapq.merge(*streams, key=lambda b: (b[0], b[1])):
                handle.writelines(batch)
                lines += len(batch)
    except OSError as exc:
        if not special:
            target.unlink(missing_ok=True)
        raise OltpseedError(f"cannot write {out}: {exc.strerror or exc}") from None
    if not special:
        target.replace(out)
    return lines


def _batches(path: Path, order: int) -> Iterator[tuple[int, int, list[str]]]:
    """(at, file order, lines) per batch of one changes file, in file order.

    A file without ``at`` (a plain one-client run) keeps its place: its
    batches sort at 0, before the stamped ones, in their own order."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        batch: list[str] = []
        key: tuple[Any, Any] | None = None
        at = 0
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                here = (item["run"], item["batch"])
                stamp = int(item.get("at", 0))
            except (ValueError, KeyError, TypeError):
                raise UsageError(
                    f"{path}:{number}: not a changes line (give stream --changes files)"
                ) from None
            if here != key and batch:
                yield at, order, batch
                batch = []
            key, at = here, stamp
            batch.append(line if line.endswith("\n") else line + "\n")
        if batch:
            yield at, order, batch
