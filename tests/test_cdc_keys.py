"""`oltpseed cdc verify --changes`: key by key, against a real decode."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed import cdc
from pytest_oltpseed.cdc.changes import RowChange, read_changes
from pytest_oltpseed.cdc.keys import Seen, compare, received
from pytest_oltpseed.domains import registry, tables_of
from tests.conftest import run_cli
from tests.stream_helpers import (
    committed_in,
    read_report,
    seed,
    start_stream,
    stream_env,
    terminate_backends,
    wait_for,
)


def _streamed(
    database: str, env: dict[str, str], tmp_path: Path, plugin: str = "pgoutput"
) -> tuple[Path, Path]:
    """cdc start, then a stream with a terminated backend; (report, changes)."""
    seed(database)
    started = run_cli("cdc", "start", "--dsn", database, "--plugin", plugin, env=env)
    assert started.returncode == 0, started.stderr
    report, changes = tmp_path / "r.json", tmp_path / "c.jsonl"
    proc = start_stream(
        env, "--dsn", database, "--max-events", "1200", "--rate", "600",
        "--batch-size", "25", "--progress", "0.3", "--report", str(report),
        "--changes", str(changes),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 300, what="first commits")
    assert terminate_backends(database, env["PG_APPLICATION_NAME"]) >= 1
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert read_report(report)["reconnects"] >= 1
    return report, changes


@pytest.mark.parametrize("plugin", ["pgoutput", "test_decoding"])
def test_every_change_verified_key_by_key_after_a_killed_backend(
    database: str, cli_env: dict[str, str], tmp_path: Path, plugin: str
) -> None:
    env = stream_env(cli_env)
    report, changes = _streamed(database, env, tmp_path, plugin)
    done = run_cli("cdc", "verify", "--dsn", database, "--report", str(report),
                   "--changes", str(changes), "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    lines = sum(1 for _ in read_changes(changes))
    assert verdict["ok"] and verdict["keys"]["ok"]
    assert verdict["keys"]["expected"] == lines == verdict["keys"]["received"]
    assert sum(t["seen"] for t in verdict["keys"]["tables"]) == lines


def test_a_loss_and_a_duplicate_with_equal_counts_are_both_reported(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = stream_env(cli_env)
    _report, changes = _streamed(database, env, tmp_path)
    expected = list(read_changes(changes))
    with psycopg.connect(database, autocommit=True) as conn:
        decoded = cdc.read(conn, consume=False)
    tables = tables_of(registry().values())
    seen = list(received(decoded, set(tables), cdc.TAG))
    updates = [i for i, s in enumerate(seen) if (s.table, s.op) == ("exames", "update")]
    lost, twice = updates[0], updates[-1]
    pipeline = [s for i, s in enumerate(seen) if i != lost] + [seen[twice]]
    assert Counter((s.table, s.op) for s in pipeline) == Counter(
        (s.table, s.op) for s in seen
    )  # counts alone cannot tell
    verdict = compare(expected, pipeline, show=5)
    assert verdict.totals == {"missing": 1, "duplicate": 1, "extra": 0, "reordered": 0}
    [missing], [duplicate] = verdict.issues["missing"], verdict.issues["duplicate"]
    assert (missing.table, missing.op, missing.key) == (
        "exames", "update", dict(seen[lost].key),
    )  # fmt: skip
    assert duplicate.key == dict(seen[twice].key)
    assert missing.batch == seen[lost].batch[1]  # type: ignore[index]
    assert missing.xid == seen[lost].xid
    line = next(x for x in verdict.lines if (x.table, x.op) == ("exames", "update"))
    assert (line.missing, line.duplicate, line.ok) == (1, 1, False)


def test_the_cli_lists_the_first_differences(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = stream_env(cli_env)
    _report, changes = _streamed(database, env, tmp_path)
    lines = changes.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    wrong = {**first, "key": {"id": 99_999_999}}
    changes.write_text("\n".join([json.dumps(wrong), *lines[1:]]) + "\n")
    wide = {**env, "COLUMNS": "250"}
    done = run_cli("cdc", "verify", "--dsn", database, "--changes", str(changes),
                   "--show", "3", "--keep", env=wide)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "cdc verify, key by key: DIFFERENCES" in out
    table, op = first["table"], first["op"]
    batch, xid = first["batch"], first["xid"]
    assert "missing: 1 (first 1)" in out
    assert f'  {table} {op} {{"id": 99999999}} batch {batch} xid {xid}' in out
    assert "extra: 1 (first 1)" in out
    assert f'  {table} {op} {{"id": {first["key"]["id"]}}} batch {batch}' in out
    # the slot was kept (--keep) and peeked: the clean file still verifies
    changes.write_text("\n".join(lines) + "\n")
    again = run_cli("cdc", "verify", "--dsn", database, "--changes", str(changes),
                    env=env)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr


def test_extra_and_reordered_changes() -> None:
    def line(batch: int, op: str, key: int) -> RowChange:
        return RowChange("r", batch, 100 + batch, "t", op, {"id": key})

    def seen(batch: int | None, op: str, key: int) -> Seen:
        tag = ("r", batch) if batch is not None else None
        return Seen("t", op, (("id", key),), tag, 100 + (batch or 0))

    expected = [line(1, "insert", 1), line(2, "update", 1), line(3, "delete", 1)]
    pipeline = [
        seen(1, "insert", 1),
        seen(3, "delete", 1),  # the delete before the update that preceded it
        seen(2, "update", 1),
        seen(None, "update", 7),  # someone else's change
    ]
    verdict = compare(expected, pipeline)
    assert verdict.totals == {"missing": 0, "duplicate": 0, "extra": 1, "reordered": 1}
    [reordered] = verdict.issues["reordered"]
    assert (reordered.op, reordered.batch) == ("update", 2)
    [extra] = verdict.issues["extra"]
    assert (extra.key, extra.batch) == ({"id": 7}, None)
    assert compare(expected, pipeline[:1] + pipeline[2:3] + pipeline[1:2]).ok


def test_changes_of_another_run_than_the_report_are_refused(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = stream_env(cli_env)
    report, changes = _streamed(database, env, tmp_path)
    document = read_report(report)
    document["run_id"] = "someoneelse"
    report.write_text(json.dumps(document))
    done = run_cli("cdc", "verify", "--dsn", database, "--report", str(report),
                   "--changes", str(changes), env=env)  # fmt: skip
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "the report run someoneelse: give the files of one run" in line
    with psycopg.connect(database) as conn:  # nothing dropped
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (
            1,
        )
