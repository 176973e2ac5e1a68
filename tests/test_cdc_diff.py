"""`oltpseed cdc diff`: Debezium sink files against the changes file, key by key."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed.cdc import diff as sink_diff
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.errors import UsageError
from tests.conftest import run_cli
from tests.debezium import (
    Decoded,
    changes_lines,
    decode,
    envelope,
    primary_keys,
    sink_lines,
)
from tests.stream_helpers import seed

KEYS = {"consultas": ["id"], "lab_slots": ["position", "shelf"]}


def _change(op: str, key: int, xid: int, lsn: int, table: str = "consultas") -> Decoded:
    row = {"id": key, "status": "agendada"}
    return Decoded(
        table, op, xid, lsn,
        before=row if op == "delete" else None,
        after=row if op != "delete" else None,
    )  # fmt: skip


def _history() -> list[Decoded]:
    """Three transactions over keys 1-3 of one table."""
    return [
        _change("insert", 1, 700, 100),
        _change("insert", 2, 700, 101),
        _change("update", 1, 701, 200),
        _change("update", 2, 701, 201),
        _change("update", 1, 702, 300),
        _change("delete", 2, 702, 301),
        _change("insert", 3, 702, 302),
    ]


def _files(tmp_path: Path, expected: list[str], actual: list[str]) -> tuple[Path, Path]:
    want, got = tmp_path / "changes.jsonl", tmp_path / "sink.jsonl"
    want.write_text("".join(line + "\n" for line in expected), encoding="utf-8")
    got.write_text("".join(line + "\n" for line in actual), encoding="utf-8")
    return want, got


def test_a_clean_sink_in_every_accepted_form_matches(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    history = _history()
    wrapped = sink_lines(history[:3], KEYS)
    bare = sink_lines(history[3:5], KEYS, wrapped=False)
    keyed = [f'{{"id": 2}}\t{line}' for line in sink_lines(history[5:], KEYS)]
    noise = [
        '{"status": "BEGIN", "id": "702:301", "event_count": null}',
        envelope(history[0], "r", after={"id": 9}),  # a snapshot read
        envelope(history[0], "m"),  # a logical decoding message
    ]
    want, got = _files(
        tmp_path, changes_lines(history, KEYS), [*noise, *wrapped, *bare, *keyed]
    )
    found = sink_diff.diff(want, got)
    assert found.ok, found.as_dict()
    assert found.totals()["expected"] == found.totals()["delivered"] == 7
    assert (found.snapshot, found.skipped) == (1, 3)  # BEGIN, m, a tombstone
    done = run_cli("cdc", "diff", "--expected", str(want), "--actual", str(got),
                   env=cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "every committed change delivered once" in done.stdout


def test_each_kind_of_difference_is_reported(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    history = _history()
    lines = sink_lines(history, KEYS)  # 7 events, 1 tombstone after the delete
    sink = [lines[0], lines[1], lines[4], lines[2], lines[3]]  # key 1: 702 before 701
    sink.append(lines[1])  # redelivered: the same LSN again
    again = json.loads(lines[0])
    again["payload"]["source"]["lsn"] = 999  # the same change from elsewhere
    sink.append(json.dumps(again))
    sink.append(envelope(_change("insert", 42, 703, 400), "c", after={"id": 42}))
    # missing: the delete of key 2 and the insert of key 3 (lines 5-7) never came
    want, got = _files(tmp_path, changes_lines(history, KEYS), sink)
    found = sink_diff.diff(want, got)
    totals = found.totals()
    assert not found.ok
    assert (totals["missing"], totals["duplicated"], totals["redelivered"]) == (2, 1, 1)
    assert (totals["unexpected"], totals["reordered"]) == (1, 1)
    examples = found.as_dict()["examples"]
    assert examples["unexpected"] == [
        {"kind": "unexpected", "table": "consultas", "op": "insert",
         "key": {"id": "42"}, "xid": 703, "line": 8}
    ]  # fmt: skip
    assert {(e["op"], e["key"]["id"]) for e in examples["missing"]} == {
        ("delete", "2"),
        ("insert", "3"),
    }
    assert examples["reordered"][0]["key"] == {"id": "1"}
    assert examples["duplicated"][0]["line"] == 7
    done = run_cli("cdc", "diff", "--expected", str(want), "--actual", str(got),
                   "--json", "--limit", "1", env=cli_env)  # fmt: skip
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is False and len(document["examples"]["missing"]) == 1
    text = run_cli("cdc", "diff", "--expected", str(want), "--actual", str(got),
                   env={**cli_env, "COLUMNS": "200"})  # fmt: skip
    assert text.returncode == 1
    assert "DIFFERENCES" in text.stdout and "reordered (1)" in text.stdout


def test_redeliveries_alone_pass(tmp_path: Path) -> None:
    history = _history()
    lines = sink_lines(history, KEYS)
    want, got = _files(tmp_path, changes_lines(history, KEYS), [*lines, *lines[2:4]])
    found = sink_diff.diff(want, got)
    assert found.ok and found.totals()["redelivered"] == 2


def test_key_changes_delivered_as_delete_and_create_match(tmp_path: Path) -> None:
    def moved(old: int, new: int, lsn: int) -> Decoded:
        return Decoded("consultas", "update", 710, lsn, after={"id": new},
                       old_key={"id": old})  # fmt: skip

    # one transaction moves key 5 away and back, and key 7 away
    history = [_change("insert", 5, 709, 400), _change("insert", 7, 709, 401),
               moved(5, -5, 500), moved(-5, 5, 501), moved(7, -7, 502)]  # fmt: skip
    sink = sink_lines(history, KEYS)
    assert [json.loads(s)["payload"]["op"] for s in sink if s != "null"] == [
        "c", "c", "d", "c", "d", "c", "d", "c",
    ]  # fmt: skip
    want, got = _files(tmp_path, changes_lines(history, KEYS), sink)
    found = sink_diff.diff(want, got)
    assert found.ok, found.as_dict()
    assert found.key_changes == 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ('{"payload": {"op": "c", "after": {"id": 1}}}', "no payload.source.table"),
        ('{"op": "x", "source": {"table": "t"}}', "unknown op 'x'"),
        (
            '{"op": "c", "source": {"table": "t"}, "after": null}',
            "op 'c' without after",
        ),
        ("[1, 2]", "not a JSON object"),
        ('{"op": ["c"], "source": {"table": "t"}}', "malformed event"),
    ],
)
def test_bad_sink_line_is_one_line_exit_2(
    tmp_path: Path, cli_env: dict[str, str], line: str, reason: str
) -> None:
    history = _history()
    good = sink_lines(history[:1], KEYS)
    want, got = _files(tmp_path, changes_lines(history, KEYS), [*good, line])
    with pytest.raises(UsageError, match=f"sink.jsonl:2: {reason}"):
        sink_diff.diff(want, got)
    done = run_cli("cdc", "diff", "--expected", str(want), "--actual", str(got),
                   env=cli_env)  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines() == [done.stderr.strip()]
        and "sink.jsonl:2" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_bad_expected_file_or_missing_files_exit_2(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    want, got = _files(tmp_path, ['{"run": "r"}'], [])
    done = run_cli("cdc", "diff", "--expected", str(want), "--actual", str(got),
                   env=cli_env)  # fmt: skip
    assert done.returncode == 2 and "changes.jsonl:1" in done.stderr
    gone = run_cli("cdc", "diff", "--expected", str(tmp_path / "nope.jsonl"),
                   "--actual", str(got), env=cli_env)  # fmt: skip
    assert gone.returncode == 2 and "cannot read --expected" in gone.stderr
    assert "nope.jsonl" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1


RAW = "diff_raw"


def test_a_real_decode_of_a_cdclab_stream(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The stream's own changes file against a sink built from the WAL of the
    same run (key changes, a composite key, a table without primary key,
    TRUNCATE): clean; then each injected defect is the one reported."""
    seed(database, domain="cdclab")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (RAW,)
        )
    want = tmp_path / "changes.jsonl"
    done = run_cli(
        "stream", "--domain", "cdclab", "--dsn", database, "--interval", "0",
        "--batch-size", "25", "--max-events", "400", "--every", "bulk_truncate:4",
        "--weights", "account_rekey=30", "--changes", str(want), env=cli_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with psycopg.connect(database, autocommit=True) as conn:
        decoded = decode(conn, RAW)
        conn.execute("SELECT pg_drop_replication_slot(%s)", (RAW,))
        keys = primary_keys(conn, tables_of(select("cdclab")))
    assert {"lab_slots", "lab_accounts"} <= set(keys) and "lab_log" not in keys
    sink = sink_lines(decoded, keys)
    got = tmp_path / "sink.jsonl"
    got.write_text("\n".join(sink) + "\n", encoding="utf-8")
    clean = sink_diff.diff(want, got)
    assert clean.ok, clean.as_dict()["examples"]
    assert clean.key_changes > 0
    ops = {(t.table, t.op) for t in clean.tallies.values()}
    assert {("lab_bulk", "truncate"), ("lab_slots", "update"),
            ("lab_log", "update"), ("lab_entries", "update")} <= ops  # fmt: skip

    events = [(n, json.loads(s)["payload"]) for n, s in enumerate(sink) if s != "null"]
    update = next(n for n, p in events if p["op"] == "u"
                  and p["source"]["table"] == "lab_types")  # fmt: skip
    created = next(n for n, p in events if p["op"] == "c"
                   and p["source"]["table"] == "lab_slots")  # fmt: skip
    copy = json.loads(sink[created])
    copy["payload"]["source"]["lsn"] += 7  # produced twice
    broken = [line for n, line in enumerate(sink) if n != update]
    broken += [sink[created], json.dumps(copy)]
    got.write_text("\n".join(broken) + "\n", encoding="utf-8")
    totals = sink_diff.diff(want, got).totals()
    assert (totals["missing"], totals["redelivered"], totals["duplicated"]) == (1, 1, 1)
    assert totals["unexpected"] == totals["reordered"] == 0
