"""Identifier reservations: sequences, never decoded, never issued twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed import cdc
from pytest_oltpseed.data import indices
from pytest_oltpseed.data.factory import bind
from pytest_oltpseed.domains import registry, schema, select, tables_of
from pytest_oltpseed.domains.hospital import factories as h
from pytest_oltpseed.server.embedded import EmbeddedServer, ServerInfo
from tests.conftest import run_cli
from tests.stream_helpers import seed, stream_env


def test_concurrent_reservations_never_overlap(database: str) -> None:
    taken: list[list[int]] = []

    def writer() -> None:
        with psycopg.connect(database, autocommit=True) as conn:
            mine: list[int] = []
            for _ in range(20):
                mine += indices.reserve(conn, "hospital", "pacientes.cpf", 50)
            taken.append(mine)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for mine in taken for i in mine]
    assert len(every) == 4 * 20 * 50
    assert len(set(every)) == len(every)


def test_a_reservation_survives_a_rollback(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        indices.ensure(conn, "retail", "stores.code")
    with psycopg.connect(database) as conn:
        lost = indices.reserve(conn, "retail", "stores.code", 2)
        conn.rollback()
        after = indices.reserve(conn, "retail", "stores.code", 1)
        conn.commit()
    assert lost == [0, 1] and after == [2]  # rolled-back indices are not reissued


def test_bump_moves_forward_only(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        indices.bump(conn, "hospital", "medicos.crm", 100)
        assert indices.reserve(conn, "hospital", "medicos.crm", 1) == [100]
        indices.bump(conn, "hospital", "medicos.crm", 50)  # never back
        assert indices.reserve(conn, "hospital", "medicos.crm", 2) == [101, 102]
        assert indices.next_free(conn, "hospital", "medicos.crm") == 103


def test_a_bump_inside_a_transaction_is_three_statements(
    database: str, oltp_server: ServerInfo
) -> None:
    """A seeding stage bumps each key it moved inside its own transaction:
    ownership (which says the sequence exists), the lock, the move; no
    savepoint and no separate existence check (six statements before)."""
    assert oltp_server.datadir is not None
    log = oltp_server.datadir.parent / "postgresql.log"
    with psycopg.connect(database) as conn:
        indices.ensure(conn, "hospital", "medicos.crm")
        conn.commit()
        conn.execute("SET log_statement = 'all'")
        start = log.stat().st_size
        indices.bump(conn, "hospital", "medicos.crm", 100)
        conn.execute("SET log_statement = 'none'")
        conn.commit()
        pid = conn.info.backend_pid
        assert indices.next_free(conn, "hospital", "medicos.crm") == 100
    with log.open(encoding="utf-8", errors="replace") as handle:
        handle.seek(start)
        sent = [
            line.split("LOG:", 1)[1].strip()
            for line in handle
            if f"[{pid}]" in line and "LOG:" in line
        ]
    assert len(sent) == 4, sent  # the last is SET log_statement = 'none'
    assert "ALTER SEQUENCE" in sent[1] and "setval" in sent[2]


def test_seed_then_factories_and_stream_continue_past_it(
    database: str, cli_env: dict[str, str]
) -> None:
    seed(database, domain="hospital")
    with psycopg.connect(database) as conn:
        seeded = conn.execute("SELECT count(*) FROM pacientes").fetchone()
        assert seeded is not None
        assert indices.next_free(conn, "hospital", "pacientes.cpf") == seeded[0]
        with bind(conn, seed=0):
            h.Paciente.create_batch(3)  # seed 0 again: no CPF repeated
        conn.commit()
    env = stream_env(cli_env)
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--max-events", "300", "--weights", "novo_paciente=100", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "skipped 0," in done.stdout
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT cpf), count(*) FROM pacientes"
        ).fetchone()
    assert row is not None and row[0] == row[1] > seeded[0] + 3


def test_reset_drops_only_marked_sequences(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        schema.install(conn, select("all"))
        indices.reserve(conn, "hospital", "pacientes.cpf", 1)
        indices.reserve(conn, "retail", "clients.cpf", 1)
        conn.execute("CREATE SEQUENCE oltpseed_hospital_idx_mine")  # a user's
        # the install SQL makes every key's sequence (a DML-only role cannot)
        assert indices.owned(conn, "hospital") == sorted(
            indices.sequence_name("hospital", key)
            for key in ("medicos.crm", "convenios.cnpj", "pacientes.cpf")
        )
        schema.reset(conn, select("hospital"))
        names = {
            r[0]
            for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'S'")
        }
        # dropped and made anew by the reinstall; the other domain's untouched
        assert indices.next_free(conn, "hospital", "pacientes.cpf") == 0
        assert indices.next_free(conn, "retail", "clients.cpf") == 1
    assert "oltpseed_hospital_idx_mine" in names


def test_indices_of_an_earlier_version_are_migrated(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE oltpseed_hospital_sequences (key text PRIMARY KEY, "
            "next_index bigint NOT NULL)"
        )
        conn.execute(
            "INSERT INTO oltpseed_hospital_sequences VALUES ('pacientes.cpf', 4321)"
        )
        schema.install(conn, select("hospital"))
        gone = conn.execute(
            "SELECT to_regclass('oltpseed_hospital_sequences')"
        ).fetchone()
        assert gone == (None,)
        assert indices.reserve(conn, "hospital", "pacientes.cpf", 1) == [4321]


@pytest.mark.parametrize("plugin", ["pgoutput", "test_decoding"])
def test_no_bookkeeping_reaches_logical_decoding(
    database: str, cli_env: dict[str, str], tmp_path: Path, plugin: str
) -> None:
    """A client capturing every table (Debezium's all_tables, pg_recvlogical)
    sees only the domains' tables while oltpseed seeds, builds and streams."""
    slot = f"all_{plugin}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE PUBLICATION {slot} FOR ALL TABLES")
        conn.execute(
            "SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin)
        )
        try:
            seed(database)
            with psycopg.connect(database) as writer, bind(writer, seed=3):
                h.Paciente.create_batch(2)
            env = stream_env(cli_env)
            done = run_cli(
                "stream", "--dsn", database, "--interval", "0",
                "--max-events", "400", "--report", str(tmp_path / "r.json"),
                env=env,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            seen = cdc.read(conn, slot=slot, publication=slot, consume=False)
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            conn.execute(f"DROP PUBLICATION {slot}")
    tables = {c.table for tx in seen for c in tx.changes}
    domain_tables = set(tables_of(registry().values()))
    assert tables & {"pacientes", "consultas", "sales"}  # the capture works
    assert tables <= domain_tables, tables - domain_tables


def test_no_index_is_issued_twice_after_a_crash(server_home: Path) -> None:
    """A backend killed with SIGKILL makes PostgreSQL reset and replay its WAL
    (crash recovery): the sequence resumes past every index it handed out."""
    server = EmbeddedServer(server_home)
    info, _ = server.start()
    try:
        with psycopg.connect(info.dsn(), autocommit=True) as conn:
            taken = indices.reserve(conn, "retail", "clients.cpf", 5)
            os.kill(conn.info.backend_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        log = server_home / "pg" / "postgresql.log"
        # Wait for the reset to be done: a connection made before the
        # postmaster noticed the crash would reserve before the replay.
        while "reinitializing" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, "no crash reset within 60 s"
            time.sleep(0.05)
        while True:
            try:
                with psycopg.connect(info.dsn(), autocommit=True) as conn:
                    after = indices.reserve(conn, "retail", "clients.cpf", 1)
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "no recovery within 60 s"
                time.sleep(0.2)
        # Recovery resumed from the WAL, which logs a sequence ahead of what
        # it hands out: the values in between are skipped, never reissued
        # (without the crash the next index would have been max(taken) + 1).
        assert after[0] > max(taken) + 1
    finally:
        server.stop()
