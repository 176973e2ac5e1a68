"""The opt-in cdclab domain: every edge case reaches logical decoding and verifies."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed.cdc.capture import _test_decoding
from pytest_oltpseed.cdc.changes import RowChange
from pytest_oltpseed.cdc.keys import Seen, compare
from pytest_oltpseed.domains import default_domains, names, schema, select
from pytest_oltpseed.errors import UsageError
from pytest_oltpseed.stream import events
from tests.conftest import run_cli
from tests.stream_helpers import (
    read_report,
    seed,
    start_stream,
    stream_env,
    terminate_backends,
    wait_for,
)

LAB = ("--domain", "cdclab")
RAW_SLOT = "lab_raw"  # a test_decoding slot of the test's own, read as text


def test_all_leaves_the_opt_in_domain_out() -> None:
    assert "cdclab" in names()
    assert [d.name for d in select("cdclab")] == ["cdclab"]
    assert "cdclab" not in {d.name for d in select("all")}
    assert select("all") == default_domains()


def test_every_takes_event_and_batches() -> None:
    assert events.parse_every(["bulk_load:20", "evolve:3"]) == (
        ("bulk_load", 20),
        ("evolve", 3),
    )
    for bad in ("bulk_load", "bulk_load:0", "bulk_load:x", ":3"):
        with pytest.raises(UsageError, match="EVENT:N"):
            events.parse_every([bad])
    resolved = events.resolve_every(select("cdclab"), [("bulk_load", 5)])
    assert resolved[0][0].weight == 0  # weightless events run through --every
    with pytest.raises(UsageError, match="unknown event 'bulk_load'"):
        events.resolve_every(select("hospital"), [("bulk_load", 5)])


def test_every_with_an_unknown_event_is_one_line_exit_2(
    cli_env: dict[str, str],
) -> None:
    done = run_cli("stream", "--dry-run", "--domain", "retail",
                   "--every", "nope:3", env=cli_env)  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "unknown event 'nope' in --every" in done.stderr
    plan = run_cli("stream", "--dry-run", *LAB, "--every", "bulk_load:4",
                   env=cli_env)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert "also bulk_load once every 4 batches" in plan.stdout


def test_full_identity_keys_are_cut_to_the_changes_file_key() -> None:
    """pgoutput flags every column of a REPLICA IDENTITY FULL table as its
    identity: the decoded key is the whole row, the changes file's is not."""
    expected = [
        RowChange("r", 1, 9, "lab_log", "update", {"event_id": "e1"}),
        RowChange("r", 1, 9, "lab_documents_full", "delete", {"id": 4}),
    ]
    whole_rows = [
        Seen("lab_log", "update",
             (("detail", None), ("event_id", "e1"), ("kind", "login")), ("r", 1), 9),
        Seen("lab_documents_full", "delete",
             (("body", "x" * 50), ("id", 4), ("title", "t")), ("r", 1), 9),
    ]  # fmt: skip
    verdict = compare(expected, whole_rows)
    assert verdict.ok, verdict.as_dict()


def test_test_decoding_keys_of_a_keyword_column() -> None:
    """test_decoding quotes a column named by a keyword ("position")."""
    lines = iter([
        ("0/1", "BEGIN 77"),
        ("0/2", "table public.lab_slots: INSERT: shelf[character varying]:'A1' "
                "\"position\"[integer]:5 tags[text[]]:'{a}' quantity[integer]:3"),
        ("0/3", "COMMIT 77"),
    ])  # fmt: skip
    [tx] = _test_decoding(lines, {"lab_slots": ("shelf", "position")})
    assert [c.key_map for c in tx.changes] == [{"shelf": "A1", "position": 5}]


def test_schema_installs_and_resets_alone(database: str) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("cdclab"))
        schema.install(conn, select("cdclab"))  # harmless twice
        identity = dict(
            conn.execute(
                "SELECT relname, relreplident FROM pg_class WHERE relname = ANY(%s)",
                (["lab_documents", "lab_documents_full", "lab_log"],),
            ).fetchall()
        )
        keys = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indisprimary "
            "AND indrelid = ANY(ARRAY['lab_slots', 'lab_log']::regclass[])"
        ).fetchone()
        schema.reset(conn, select("cdclab"))
        conn.commit()
    assert identity == {"lab_documents": "d", "lab_documents_full": "f", "lab_log": "f"}
    assert keys == (1,)  # lab_slots has its composite key, lab_log none


def _raw_slot(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')",
            (RAW_SLOT,),
        )


def _raw_lines(database: str) -> list[str]:
    """What test_decoding made of the WAL since the slot was created (consumed)."""
    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
            (RAW_SLOT,),
        ).fetchall()
    return [row[0] for row in rows]


def _verify(
    database: str, env: dict[str, str], report: Path, changes: Path
) -> dict[str, object]:
    """`cdc verify`, per table and op and key by key (FULL identity tables
    included: their decoded "key" is the whole row)."""
    done = run_cli("cdc", "verify", *LAB, "--dsn", database, "--report",
                   str(report), "--changes", str(changes), "--json",
                   env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    verdict: dict[str, object] = json.loads(done.stdout)
    return verdict


def test_every_edge_case_is_decoded_and_verifies(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="cdclab")
    env = stream_env(cli_env)
    _raw_slot(database)
    assert run_cli("cdc", "start", *LAB, "--dsn", database, env=env).returncode == 0
    # run 1: a 100k-row transaction in every batch, a backend killed mid-way
    report, changes = tmp_path / "r1.json", tmp_path / "c1.jsonl"
    proc = start_stream(
        env, *LAB, "--dsn", database, "--rate", "300", "--batch-size", "40",
        "--max-events", "200", "--every", "bulk_load:1", "--every", "evolve:2",
        "--weights", "doc_insert=30,account_rekey=15,log_update=15,slot_update=15,"
        "evolving_write=20",
        "--progress", "0.3", "--report", str(report), "--changes", str(changes),
    )  # fmt: skip
    wait_for(lambda: read_report(report)["batches"] >= 1, what="a first batch")
    assert terminate_backends(database, env["PG_APPLICATION_NAME"]) >= 1
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    first = read_report(report)
    assert first["reconnects"] >= 1
    verdict = _verify(database, env, report, changes)
    assert verdict["ok"] and verdict["keys"]["ok"], verdict
    tables = first["tables"]
    assert tables["lab_bulk"]["insert"] >= 100_000
    assert tables["lab_bulk"]["insert"] % 100_000 == 0  # whole transactions only
    assert tables["lab_accounts"]["update"] and tables["lab_entries"]["update"]
    # the changes file: a line per row change the report counts, keyed
    lines = [json.loads(line) for line in changes.read_text().splitlines()]
    per_op = Counter((line["table"], line["op"]) for line in lines)
    assert per_op == Counter(
        {(t, op): n for t, ops in tables.items() for op, n in ops.items() if n}
    )
    keys = {line["table"]: sorted(line["key"]) for line in lines if line["key"]}
    assert keys["lab_slots"] == ["position", "shelf"]  # composite
    assert keys["lab_log"] == ["event_id"]  # no primary key: the row's own id
    assert keys["lab_entries"] == ["id"]  # the cascade's rows too
    truncates = [line for line in lines if line["op"] == "truncate"]
    assert all(line["key"] == {} for line in truncates)
    # run 2 (--verify-cdc): run 1's added column is dropped; TRUNCATEs
    second_report = tmp_path / "r2.json"
    done = run_cli(
        "stream", *LAB, "--dsn", database, "--interval", "0", "--batch-size", "30",
        "--max-events", "150", "--every", "evolve:2", "--every", "bulk_truncate:3",
        "--report", str(second_report), "--changes", str(tmp_path / "c2.jsonl"),
        "--verify-cdc", env={**env, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every committed change captured once" in done.stdout
    assert "key by key: all" in done.stdout  # the dropped column's table too
    second = read_report(second_report)
    assert second["tables"]["lab_bulk"]["truncate"] >= 1
    for table in ("lab_documents", "lab_documents_full", "lab_types", "lab_slots",
                  "lab_log", "lab_evolving"):  # fmt: skip
        for op in ("insert", "update"):  # rare events: either run will do
            assert first["tables"][table][op] + second["tables"][table][op], table

    lines = _raw_lines(database)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (RAW_SLOT,))
    shapes = Counter(_shape(line) for line in lines)
    # TOAST: unchanged out-of-line values are not sent, with either identity
    assert shapes["lab_documents UPDATE unchanged-toast"] > 0
    assert shapes["lab_documents_full UPDATE unchanged-toast old-row"] > 0
    # key change: the old key travels with the update, the children follow
    assert shapes["lab_accounts UPDATE old-key"] == (
        first["tables"]["lab_accounts"]["update"]
        + second["tables"]["lab_accounts"]["update"]
    )
    assert shapes["lab_log UPDATE old-row"] > 0  # no PK: the whole old row
    assert shapes["lab_bulk TRUNCATE"] == sum(
        run["tables"]["lab_bulk"].get("truncate", 0) for run in (first, second)
    )
    # schema change: rows carrying the added column, then rows without it again
    evolving = [line for line in lines if line.startswith("table public.lab_evolving")]
    with_extra = [i for i, line in enumerate(evolving) if "extra[text]" in line]
    dropped = [
        i for i in with_extra if i + 1 < len(evolving) and i + 1 not in with_extra
    ]
    assert with_extra and dropped  # the column came, then went
    types = next(line for line in lines if "lab_types: INSERT" in line and
                 "amount[numeric]:" in line and "tags[text[]]:" in line)  # fmt: skip
    for kind in ("timestamp with time zone", "uuid", "jsonb", "bytea", "lab_mood",
                 "lab_code", "interval", "time without time zone"):  # fmt: skip
        assert f"[{kind}]" in types, kind


def _shape(line: str) -> str:
    """A test_decoding line reduced to table, operation and what it carries."""
    found = re.match(r"table public\.(\w+): (\w+):", line)
    if not found:
        return ""
    parts = [found.group(1), found.group(2)]
    if "unchanged-toast-datum" in line:
        parts.append("unchanged-toast")
    if "old-key:" in line:
        full = found.group(1) in ("lab_documents_full", "lab_log")
        parts.append("old-row" if full else "old-key")
    return " ".join(parts)
