"""`oltpseed cdc`: guardrails, ownership of slots and publications, peeking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed import cdc
from pytest_oltpseed.errors import GuardrailRefused, OltpseedError
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli, scratch_database
from tests.stream_helpers import seed


def _objects(dsn: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(dsn) as conn:
        slots = {
            r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots")
        }
        pubs = {r[0] for r in conn.execute("SELECT pubname FROM pg_publication")}
    return slots, pubs


def _foreign_capture(dsn: str) -> None:
    """A Debezium-style slot and publication, made by hand."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE PUBLICATION dbz_publication FOR TABLE medicos")
        conn.execute(
            "SELECT pg_create_logical_replication_slot('debezium', 'pgoutput')"
        )
        conn.execute(
            "INSERT INTO medicos (nome, crm, especialidade) "
            "VALUES ('Dra. Ana', 'CRM/SP 123456', 'Cardiologia')"
        )


def _pending(dsn: str, slot: str, publication: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return sum(
            len(tx.changes)
            for tx in cdc.read(conn, slot=slot, publication=publication, consume=False)
        )


@pytest.mark.parametrize(
    "command",
    [
        ["cdc", "start"],
        ["cdc", "stop"],
        ["cdc", "verify", "--report", "REPORT"],
        ["cdc", "verify", "--report", "REPORT", "--keep", "--consume"],
    ],
)
def test_every_writing_cdc_command_is_guarded(
    database: str, cli_env: dict[str, str], tmp_path: Path, command: list[str]
) -> None:
    seed(database, domain="hospital")
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"run_id": "x", "batches": 0, "tables": {}}))
    assert run_cli("cdc", "start", "--dsn", database, env=cli_env).returncode == 0
    before = _objects(database)
    args = [str(report) if a == "REPORT" else a for a in command]
    prod = {**cli_env, "APP_ENV": "PROD"}
    done = run_cli(*args, "--dsn", database, env=prod)
    assert done.returncode == 3, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("oltpseed: error: refusing to ") and "--force" in line
    assert _objects(database) == before
    forced = run_cli(*args, "--dsn", database, "--force", env=prod)
    assert forced.returncode != 3, forced.stderr


def test_reading_without_consuming_or_dropping_is_not_guarded(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    assert run_cli("cdc", "start", "--dsn", database, env=cli_env).returncode == 0
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"run_id": "x", "batches": 0, "tables": {}}))
    prod = {**cli_env, "APP_ENV": "PROD"}
    for _ in range(2):  # peeked: the second run sees the same (no) changes
        done = run_cli(
            "cdc", "verify", "--dsn", database, "--report", str(report), "--keep",
            env=prod,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "oltpseed_cdc" in _objects(database)[0]


def test_foreign_slot_and_publication_are_refused_and_kept(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    _foreign_capture(database)
    pending = _pending(database, "debezium", "dbz_publication")
    assert pending == 1
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"run_id": "x", "batches": 0, "tables": {}}))
    where = ("--slot", "debezium", "--publication", "dbz_publication")
    for command in (
        ["cdc", "stop", *where],
        ["cdc", "verify", "--report", str(report), *where],
        ["cdc", "verify", "--report", str(report), "--keep", "--consume", *where],
        ["cdc", "start", *where],
    ):
        done = run_cli(*command, "--dsn", database, env=cli_env)
        assert done.returncode == 3, (command, done.stdout, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert "refused to" in line and "oltpseed did not create it" in line, line
    assert _objects(database) == ({"debezium"}, {"dbz_publication"})
    assert _pending(database, "debezium", "dbz_publication") == pending  # unconsumed
    # a slot of oltpseed's name but without oltpseed's publication is foreign too
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_create_logical_replication_slot('oltpseed_cdc', 'pgoutput')"
        )
        with pytest.raises(GuardrailRefused, match="replication slot 'oltpseed_cdc'"):
            cdc.drop(conn)
        with pytest.raises(GuardrailRefused):
            cdc.read(conn)  # consuming
        assert cdc.read(conn, consume=False) == []  # peeking is harmless
        conn.execute("SELECT pg_drop_replication_slot('oltpseed_cdc')")
        conn.execute("SELECT pg_drop_replication_slot('debezium')")


def test_nothing_is_dropped_when_verify_cannot_run(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    assert run_cli("cdc", "start", "--dsn", database, env=cli_env).returncode == 0
    before = _objects(database)
    assert before == ({"oltpseed_cdc"}, {"oltpseed_cdc"})
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"events": 3}))  # not a stream report
    done = run_cli("cdc", "verify", "--dsn", database, "--report", str(wrong),
                   env=cli_env)  # fmt: skip
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "the report lacks run_id" in line
    assert _objects(database) == before
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"run_id": "x", "batches": 0, "tables": {}}))
    done = run_cli("cdc", "verify", "--dsn", database, "--report", str(ok),
                   env=cli_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _objects(database) == (set(), set())  # it ran: dropped


def test_preflight_default_is_the_publication_cdc_start_makes(
    database: str, cli_env: dict[str, str]
) -> None:
    seed(database, domain="hospital")
    assert run_cli("cdc", "start", "--dsn", database, "--domain", "hospital",
                   env=cli_env).returncode == 0  # fmt: skip
    done = run_cli("cdc", "preflight", "--dsn", database, "--domain", "hospital",
                   "--json", env=cli_env)  # fmt: skip
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["publication oltpseed_cdc covers the tables"]["ok"] is True
    assert done.returncode == 0
    assert run_cli("cdc", "stop", "--dsn", database, env=cli_env).returncode == 0


def test_verify_table_columns_are_all_labelled(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    assert run_cli("cdc", "start", "--dsn", database, env=cli_env).returncode == 0
    with psycopg.connect(database) as conn:
        conn.execute("UPDATE medicos SET telefone = NULL WHERE id = 1")
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"run_id": "x", "batches": 0, "tables": {}}))
    wide = {**cli_env, "COLUMNS": "250"}
    done = run_cli("cdc", "verify", "--dsn", database, "--report", str(report),
                   env=wide)  # fmt: skip
    assert done.returncode == 1
    header = next(line for line in done.stdout.splitlines() if "captured" in line)
    labels = [cell.strip() for cell in header.strip("┃│ ").split("┃")]
    assert labels == ["table", "op", "report", "captured", "out of band", "note"]


def test_a_role_without_replication_gets_the_fix(oltp_server: ServerInfo) -> None:
    with scratch_database(oltp_server, "norepl") as dsn:
        role = f"oltpseed_norepl_{os.getpid()}"
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")
            admin.execute(f"CREATE ROLE {role} LOGIN NOREPLICATION")
            admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
            admin.execute(f"ALTER TABLE t OWNER TO {role}")
            database = admin.info.dbname
            admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
        try:
            with psycopg.connect(dsn, user=role, autocommit=True) as conn:
                with pytest.raises(OltpseedError) as caught:
                    cdc.create(conn, ["t"])
                assert str(caught.value) == (
                    f"role '{role}' lacks the REPLICATION privilege a logical slot "
                    f'needs: as a superuser, run ALTER ROLE "{role}" WITH REPLICATION'
                )
                assert _objects(dsn) == (set(), set())  # its publication undone
        finally:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("DROP TABLE t")
                admin.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM {role}')
                admin.execute(f"DROP ROLE {role}")


@pytest.mark.slow
def test_oltp_cdc_without_replication_is_one_line_with_the_fix(
    pytester: pytest.Pytester, clean_env: None, oltp_server: ServerInfo
) -> None:
    role = f"oltpseed_fx_{os.getpid()}"
    admin_dsn = oltp_server.dsn("postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CREATEDB NOREPLICATION")
    try:
        as_role = f"postgresql://{role}@{oltp_server.host}:{oltp_server.port}/postgres"
        pytester.makepyfile("def test_capture(oltp_cdc):\n    pass\n")
        result = pytester.runpytest_subprocess(
            f"--seed-dsn={as_role}", "--seed-profile=SMALL", "--seed-domain=hospital",
            f"--seed-random={os.getpid()}", "-p", "no:cacheprovider",
        )  # fmt: skip
        result.assert_outcomes(errors=1)
        text = result.stdout.str()
        assert (
            f"oltpseed: role '{role}' lacks the REPLICATION privilege a logical slot "
            f'needs: as a superuser, run ALTER ROLE "{role}" WITH REPLICATION'
        ) in text
        assert "Traceback" not in text and "psycopg.errors" not in text
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            owned = admin.execute(
                "SELECT datname FROM pg_database d JOIN pg_roles r "
                "ON r.oid = d.datdba WHERE r.rolname = %s",
                (role,),
            ).fetchall()
            for (name,) in owned:
                admin.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE false')
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize(
    ("keep", "consume", "action"),
    [
        (False, False, "drop replication slot s"),
        (True, True, "consume replication slot s"),
        (False, True, "consume replication slot s"),
        (True, False, None),
    ],
)
def test_slot_use_asks_the_guardrail_only_when_it_writes(
    keep: bool, consume: bool, action: str | None
) -> None:
    use = cdc.SlotUse("s", "p", keep=keep, consume=consume)
    assert use.writes is (action is not None)
    if action is None:
        assert use.action is None
    else:
        assert use.action == f"{action} (--keep without --consume only reads)"


def test_guarded_claims_before_the_body_and_drops_only_after_it_ran(
    database: str,
) -> None:
    seed(database, domain="hospital")
    _foreign_capture(database)
    foreign = cdc.SlotUse("debezium", "dbz_publication")
    ran: list[str] = []
    with psycopg.connect(database, autocommit=True) as conn:
        with pytest.raises(GuardrailRefused), cdc.guarded(conn, foreign):
            ran.append("foreign")  # never: refused before anything is read
        with cdc.guarded(conn, cdc.SlotUse("debezium", "dbz_publication", keep=True)):
            ran.append("peek")  # only reads: no claim, nothing dropped
        assert ran == ["peek"]
        assert _objects(database) == ({"debezium"}, {"dbz_publication"})
        conn.execute("SELECT pg_drop_replication_slot('debezium')")
        conn.execute("DROP PUBLICATION dbz_publication")
        cdc.create(conn, ["medicos"])
        with pytest.raises(RuntimeError), cdc.guarded(conn, cdc.SlotUse()):
            raise RuntimeError("the verification could not run")
        assert _objects(database) == ({"oltpseed_cdc"}, {"oltpseed_cdc"})
        with cdc.guarded(conn, cdc.SlotUse()):
            pass
    assert _objects(database) == (set(), set())


def test_read_inputs_refuses_before_any_connection(tmp_path: Path) -> None:
    with pytest.raises(OltpseedError, match="nothing to verify against") as none:
        cdc.read_inputs(None, None)
    assert none.value.exit_code == 2
    broken = tmp_path / "r.json"
    broken.write_text("{not json")
    with pytest.raises(OltpseedError, match="cannot read --report") as bad:
        cdc.read_inputs(broken, None)
    assert bad.value.exit_code == 2
    assert "not JSON" in str(bad.value)
    with pytest.raises(OltpseedError) as missing:  # the reason once, no errno
        cdc.read_inputs(tmp_path / "gone.json", None)
    assert str(missing.value) == (
        f"cannot read --report {tmp_path / 'gone.json'}: No such file or directory"
    )
    assert cdc.read_inputs(None, tmp_path / "changes.jsonl") is None
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"run_id": "x", "batches": 0, "tables": {}}))
    assert cdc.read_inputs(good, None) == {"run_id": "x", "batches": 0, "tables": {}}
