"""CDC: pgoutput decoding, `oltpseed cdc start/verify/preflight`, oltp_cdc."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed import cdc
from pytest_oltpseed.cdc.pgoutput import Message
from pytest_oltpseed.fixtures.janitor import Janitor
from pytest_oltpseed.server.embedded import ServerInfo, ephemeral_server
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


@pytest.mark.parametrize("plugin", ["pgoutput", "test_decoding"])
def test_decoding_every_kind_of_change(database: str, plugin: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE TABLE t_cdc (id bigserial PRIMARY KEY, v text)")
        cdc.create(conn, ["t_cdc"], slot="s1", publication="p1", plugin=plugin)
        try:
            with conn.transaction():
                conn.execute("INSERT INTO t_cdc (v) VALUES ('a'), ('b')")
                conn.execute("UPDATE t_cdc SET v = 'c' WHERE id = 1")
                conn.execute("DELETE FROM t_cdc WHERE id = 2")
                conn.execute("SELECT pg_logical_emit_message(true, 'tag', 'hello')")
                row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
            conn.execute("INSERT INTO t_cdc (v) VALUES ('d')")
            conn.execute("TRUNCATE t_cdc")
            peeked = cdc.read(conn, slot="s1", publication="p1", consume=False)
            found = cdc.read(conn, slot="s1", publication="p1")
            again = cdc.read(conn, slot="s1", publication="p1")
        finally:
            cdc.drop(conn, slot="s1", publication="p1")
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (
            0,
        )
    assert row is not None
    assert len(found) == 3 and again == []  # consumed once
    assert [(c.table, c.op, c.key) for c in peeked[0].changes] == [
        (c.table, c.op, c.key) for c in found[0].changes
    ]
    first = found[0]
    assert first.xid == int(row[0])
    assert [(c.table, c.op, c.key) for c in first.changes] == [
        ("t_cdc", "insert", (1,)),
        ("t_cdc", "insert", (2,)),
        ("t_cdc", "update", (1,)),
        ("t_cdc", "delete", (2,)),
    ]
    assert first.changes[0].key_map == {"id": 1}  # typed, like the changes file
    assert all(c.xid == first.xid and c.lsn == first.lsn for c in first.changes)
    assert first.messages == [Message("tag", b"hello", True)]
    assert [(c.op, c.key) for c in found[1].changes] == [("insert", (3,))]
    assert [(c.table, c.op) for c in found[2].changes] == [("t_cdc", "truncate")]


def test_stream_with_a_terminated_backend_then_verify_passes(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    env = stream_env(cli_env)
    started = run_cli("cdc", "start", "--dsn", database, env=env)
    assert started.returncode == 0, started.stderr
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", database, "--max-events", "2000", "--rate", "500",
        "--batch-size", "25", "--progress", "0.3", "--report", str(report),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 400, what="first commits")
    assert terminate_backends(database, env["PG_APPLICATION_NAME"]) >= 1
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["reconnects"] >= 1 and document["cdc_tagged"] is True
    assert document["events"]["committed"] + document["events"]["skipped"] == 2000
    verified = run_cli("cdc", "verify", "--dsn", database, "--report", str(report),
                       "--json", env=env)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdict = json.loads(verified.stdout)
    assert verdict["ok"] and verdict["batches"]["captured"] == document["batches"]
    assert sum(line["captured"] for line in verdict["tables"]) == sum(
        sum(ops.values()) for ops in document["tables"].values()
    )
    with psycopg.connect(database) as conn:  # verify dropped what start made
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (
            0,
        )


def _streamed(database: str, env: dict[str, str], report: Path) -> dict[str, object]:
    assert run_cli("cdc", "start", "--dsn", database, env=env).returncode == 0
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--max-events", "300", "--report", str(report), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return read_report(report)


def test_a_change_out_of_band_is_reported_as_extra(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    report = tmp_path / "r.json"
    _streamed(database, cli_env, report)
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE medicos SET telefone = NULL WHERE id = 1")
    wide = {**cli_env, "COLUMNS": "250"}  # table rows on one line each
    verified = run_cli("cdc", "verify", "--dsn", database, "--domain", "hospital",
                       "--report", str(report), env=wide)  # fmt: skip
    assert verified.returncode == 1
    assert "DIFFERENCES" in verified.stdout
    assert "changed outside the stream" in verified.stdout
    assert "1 transaction(s) outside the stream" in verified.stdout


def test_a_committed_batch_missing_from_the_report_is_reported(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    report = tmp_path / "r.json"
    document = _streamed(database, cli_env, report)
    # a ledger that lost one committed batch: fewer batches and rows than the WAL
    document["batches"] = int(document["batches"]) - 1  # type: ignore[call-overload]
    document["tables"]["consultas"]["insert"] -= 1  # type: ignore[index]
    report.write_text(json.dumps(document), encoding="utf-8")
    verified = run_cli("cdc", "verify", "--dsn", database, "--domain", "hospital",
                       "--report", str(report), "--json", env=cli_env)  # fmt: skip
    assert verified.returncode == 1
    verdict = json.loads(verified.stdout)
    assert not verdict["ok"]
    assert verdict["batches"]["captured"] == verdict["batches"]["reported"] + 1
    line = next(
        x for x in verdict["tables"] if (x["table"], x["op"]) == ("consultas", "insert")
    )
    assert line["captured"] == line["reported"] + 1 and not line["ok"]


def test_stream_verify_cdc_in_one_command(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="retail")
    done = run_cli(
        "stream", "--dsn", database, "--domain", "retail", "--interval", "0",
        "--max-events", "400", "--verify-cdc", "--report", str(tmp_path / "r.json"),
        "--changes", str(tmp_path / "c.jsonl"), env=cli_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "every committed change captured once" in done.stdout
    assert "cdc verify, key by key: all " in done.stdout
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (
            0,
        )
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)


def _preflight(dsn: str, env: dict[str, str]) -> tuple[int, dict[str, dict]]:
    done = run_cli("cdc", "preflight", "--dsn", dsn, "--domain", "hospital", "--json",
                   env=env)  # fmt: skip
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_preflight_passes_with_a_publication(
    database: str, cli_env: dict[str, str]
) -> None:
    seed(database, domain="hospital")
    code, checks = _preflight(database, cli_env)
    assert code == 1
    publication = checks["publication oltpseed_cdc covers the tables"]
    assert publication["ok"] is False
    # oltpseed's own publication is made by cdc start (marked as oltpseed's):
    # one made with CREATE PUBLICATION would make cdc start refuse it (exit 3)
    assert publication["fix"] == "oltpseed cdc start --domain hospital"
    assert checks["REPLICA IDENTITY of consultas"]["detail"] == (
        "DEFAULT: update/delete events carry the primary key of the old row"
    )
    started = run_cli(*shlex.split(publication["fix"])[1:], "--dsn", database,
                      env=cli_env)  # fmt: skip
    assert started.returncode == 0, started.stderr
    code, checks = _preflight(database, cli_env)
    assert code == 0
    assert all(c["ok"] is not False for c in checks.values())
    assert checks["connector plugin"]["fix"] == "plugin.name=pgoutput"
    ready = run_cli("cdc", "preflight", "--dsn", database, "--domain", "hospital",
                    env=cli_env)  # fmt: skip
    assert "ready for a Debezium connector" in ready.stdout
    assert run_cli("cdc", "stop", "--dsn", database, env=cli_env).returncode == 0


def test_preflight_of_a_connectors_publication_gives_the_sql(
    database: str, cli_env: dict[str, str]
) -> None:
    seed(database, domain="hospital")
    done = run_cli("cdc", "preflight", "--dsn", database, "--domain", "hospital",
                   "--publication", "dbz_publication", "--json",
                   env=cli_env)  # fmt: skip
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    fix = checks["publication dbz_publication covers the tables"]["fix"]
    assert fix.startswith("CREATE PUBLICATION dbz_publication FOR TABLE medicos, ")
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(fix)
    again = run_cli("cdc", "preflight", "--dsn", database, "--domain", "hospital",
                    "--publication", "dbz_publication", env=cli_env)  # fmt: skip
    assert again.returncode == 0, again.stdout


def test_wal_level_replica_is_named_with_its_fix(cli_env: dict[str, str]) -> None:
    with ephemeral_server(options="-c wal_level=replica") as server:
        dsn = server.dsn()
        code, checks = _preflight(dsn, cli_env)
        assert code == 1
        assert checks["wal_level = logical"] == {
            "name": "wal_level = logical",
            "ok": False,
            "detail": "wal_level is replica",
            "fix": "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL",
        }
        commands = (["cdc", "start"], ["stream", "--verify-cdc", "--max-events", "5"])
        for command in commands:
            done = run_cli(*command, "--dsn", dsn, env=cli_env)
            assert done.returncode == 1
            assert done.stderr.strip().splitlines()[-1] == (
                f"oltpseed: error: wal_level is 'replica' on 127.0.0.1:{server.port}; "
                "logical decoding needs wal_level=logical: run ALTER SYSTEM SET "
                "wal_level = logical; then restart PostgreSQL"
            )


FIXTURE_SUITE = """
def test_one_insert_and_one_update(oltp_cdc, oltp_database):
    with oltp_database.connect() as conn:
        conn.execute(
            "INSERT INTO consultas (paciente_id, medico_id, data, status, motivo) "
            "SELECT min(p.id), min(m.id), now(), 'agendada', 'Retorno' "
            "FROM pacientes p, medicos m"
        )
        conn.execute("UPDATE internacoes SET quarto = '101-A' WHERE id = 1")
    assert oltp_cdc.counts() == {
        ("consultas", "insert"): 1, ("internacoes", "update"): 1}
    [change] = oltp_cdc.changes("internacoes")
    assert change.key == (1,) and change.key_map == {"id": 1}


def test_nothing_changed(oltp_cdc):
    assert oltp_cdc.changes() == []
"""


@pytest.mark.slow
def test_oltp_cdc_fixture_in_a_downstream_suite(
    pytester: pytest.Pytester, clean_env: None
) -> None:
    pytester.makepyfile(test_capture=FIXTURE_SUITE)
    result = pytester.runpytest_subprocess(
        "--seed-profile=SMALL", "--seed-domain=hospital", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)


def test_a_clone_left_with_a_slot_is_still_dropped(oltp_server: ServerInfo) -> None:
    """A killed test can leave oltp_cdc's slot in its clone: the janitor drops both."""
    name = f"oltpseed_db_slot_{os.getpid()}"
    with psycopg.connect(oltp_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(oltp_server.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        cdc.create(conn, ["t"], slot=f"s_{os.getpid()}", publication="p")
    Janitor(oltp_server.dsn).drop(name)
    with psycopg.connect(oltp_server.dsn("postgres")) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
            (f"s_{os.getpid()}",),
        ).fetchone() == (0,)
