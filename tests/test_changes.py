"""`oltpseed stream --changes`: the row-level ledger, set against the WAL."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_oltpseed import cdc
from pytest_oltpseed.cdc.changes import ChangesWriter, read_changes
from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli
from tests.stream_helpers import (
    ack_dropper,
    committed_in,
    counts,
    read_report,
    seed,
    start_stream,
    stream_env,
    terminate_backends,
    wait_for,
)


def _by_batch_from_wal(dsn: str, run: str) -> dict[int, tuple[int, list[Any]]]:
    """Batch -> (xid, [(table, op, key), ...]) of the run's tagged transactions."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = cdc.read(conn, consume=False)
    batches: dict[int, tuple[int, list[Any]]] = {}
    for tx in found:
        numbers = [cdc.batch_tag(m, run) for m in tx.messages]
        [number] = [n for n in numbers if n is not None] or [None]
        if number is not None:
            assert number not in batches
            batches[number] = (
                tx.xid,
                [(c.table, c.op, c.key_map) for c in tx.changes],
            )
    return batches


def _by_batch_from_file(path: Path) -> dict[int, tuple[int, list[Any]]]:
    batches: dict[int, tuple[int, list[Any]]] = defaultdict(lambda: (0, []))
    for line in read_changes(path):
        xid, rows = batches[line.batch]
        assert xid in (0, line.xid)
        rows.append((line.table, line.op, dict(line.key)))
        batches[line.batch] = (line.xid, rows)
    return dict(batches)


def _assert_file_equals_report(path: Path, document: dict[str, Any]) -> None:
    per_op = Counter((c.table, c.op) for c in read_changes(path))
    for table, ops in document["tables"].items():
        for op, n in ops.items():
            assert per_op[(table, op)] == n, (table, op)
    assert document["changes"]["lines"] == sum(per_op.values())


def test_changes_file_is_the_wal_key_by_key_with_a_killed_backend(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    before = counts(database)
    env = stream_env(cli_env)
    assert run_cli("cdc", "start", "--dsn", database, env=env).returncode == 0
    report, changes = tmp_path / "r.json", tmp_path / "changes.jsonl"
    proc = start_stream(
        env, "--dsn", database, "--max-events", "1500", "--rate", "500",
        "--batch-size", "25", "--progress", "0.3", "--report", str(report),
        "--changes", str(changes),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 300, what="first commits")
    assert changes.read_text(encoding="utf-8").count("\n") > 0  # flushed per batch
    assert terminate_backends(database, env["PG_APPLICATION_NAME"]) >= 1
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["reconnects"] >= 1
    from_file = _by_batch_from_file(changes)
    assert len(from_file) == document["batches"]
    assert from_file == _by_batch_from_wal(database, document["run_id"])
    _assert_file_equals_report(changes, document)
    after = counts(database)
    inserted = Counter(c.table for c in read_changes(changes) if c.op == "insert")
    deleted = Counter(c.table for c in read_changes(changes) if c.op == "delete")
    for table in before:
        assert after[table] - before[table] == inserted[table] - deleted[table]
    assert run_cli("cdc", "stop", "--dsn", database, env=env).returncode == 0


def test_a_settled_commit_is_written_once(
    oltp_server: ServerInfo,
    database: str,
    cli_env: dict[str, str],
    tmp_path: Path,
) -> None:
    seed(database, domain="hospital")
    report, changes = tmp_path / "r.json", tmp_path / "changes.jsonl"
    dbname = conninfo_to_dict(database)["dbname"]
    with ack_dropper(oltp_server.host, oltp_server.port) as proxy:
        via_proxy = make_conninfo(
            host="127.0.0.1", port=str(proxy.port), user=oltp_server.user,
            dbname=str(dbname),
        )  # fmt: skip
        proc = start_stream(
            stream_env(cli_env), "--dsn", via_proxy, "--domain", "hospital",
            "--rate", "300", "--batch-size", "30", "--duration", "4",
            "--progress", "0.3", "--report", str(report), "--changes", str(changes),
        )  # fmt: skip
        wait_for(lambda: committed_in(report) > 60, what="first commits")
        proxy.armed = True
        _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert proxy.dropped == 1
    document = read_report(report)
    assert document["settled_commits"] == {"committed": 1}
    _assert_file_equals_report(changes, document)
    listed = list(read_changes(changes))
    deleted = {(c.table, c.key["id"]) for c in listed if c.op == "delete"}
    with psycopg.connect(database) as conn:  # every row inserted and kept is there
        for change in listed:
            if (
                change.op == "insert"
                and (change.table, change.key["id"]) not in deleted
            ):
                row = conn.execute(
                    f"SELECT count(*) FROM {change.table} WHERE id = %s",
                    (change.key["id"],),
                ).fetchone()
                assert row == (1,), change


@pytest.mark.parametrize("where", ["/proc/oltpseed/changes.jsonl", "DIR"])
def test_an_unwritable_changes_path_writes_nothing(
    database: str, cli_env: dict[str, str], tmp_path: Path, where: str
) -> None:
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    path = str(tmp_path) if where == "DIR" else where
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--max-events", "50", "--changes", path, env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"oltpseed: error: cannot write --changes {path}: ")
    assert counts(database, "hospital") == before


def test_the_line_format_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with ChangesWriter.open(path) as writer:
        written = writer.write_batch(
            "r1", 3, 77, [("sales", "update", [{"id": 5}]), ("t", "truncate", [{}])]
        )
        assert written == 2
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {
        "run": "r1", "batch": 3, "xid": 77, "table": "sales", "op": "update",
        "key": {"id": 5},
    }  # fmt: skip
    assert [(c.table, c.op, c.key) for c in read_changes(path)] == [
        ("sales", "update", {"id": 5}),
        ("t", "truncate", {}),
    ]
    path.write_text(path.read_text() + '{"run": "r1"}\n')
    with pytest.raises(UsageError, match=r"c.jsonl:3: not a changes line"):
        list(read_changes(path))


def test_a_failed_write_stops_the_stream_with_one_line(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """A full disk (/dev/full) after the first commit: exit 1, one line, and the
    report still counts the batch the database committed."""
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--max-events", "200", "--report", str(report), "--changes", "/dev/full",
        env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "oltpseed: error: cannot write --changes /dev/full: No space left on device; "
        "it holds the batches before 1,"
    ), last
    assert "Traceback" not in done.stderr
    document = read_report(report)
    assert document["batches"] == 1 and document["exit"] == "failed"
    after = counts(database, "hospital")
    for table, ops in document["tables"].items():
        assert after[table] - before[table] == ops["insert"] - ops["delete"]
