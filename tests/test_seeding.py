"""The seeding engine on real databases: counts, atomicity, idempotency, determinism."""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pytest_oltpseed import validators
from pytest_oltpseed.data.factory import bind
from pytest_oltpseed.domains import default_domains, schema, select, tables_of
from pytest_oltpseed.domains.hospital import factories as h
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.profiles import resolve
from pytest_oltpseed.seed import seeder
from pytest_oltpseed.seed.seeder import Seeder, Stage, plan
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli, scratch_database

ALL_TABLES = tables_of(default_domains())
HEADERS = {
    "product_entries": "product_entry_items",
    "internal_distributions": "internal_distribution_items",
    "sales": "sale_items",
}
LOOKUPS = {"convenios": 2}


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database) as connection:
        schema.install(connection, select("all"))
        connection.commit()
        yield connection


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[arg-type, index]
        for t in ALL_TABLES
    }


def _violations(conn: psycopg.Connection) -> list[str]:
    findings = validators.check_database(conn, select("all"))
    conn.rollback()
    return [
        f"{f.rule}: {f.violations} (e.g. {f.example})" for f in findings if not f.ok
    ]


@pytest.mark.parametrize("name", ["SMALL", "MEDIUM", "LARGE"])
def test_exact_counts_and_clean_check(conn: psycopg.Connection, name: str) -> None:
    profile = resolve(name)
    stages = plan(select("all"), profile)  # opt-in domains' tables not included
    assert {stage.table for stage in stages} <= set(ALL_TABLES)
    Seeder(conn).run(stages)
    counts = _counts(conn)
    for stage in stages:
        expected = profile.counts[stage.table]
        assert counts[stage.table] == expected + LOOKUPS.get(stage.table, 0)
    for header, items in HEADERS.items():
        per_header = counts[items] / counts[header]
        assert 1 <= per_header <= 8, (items, per_header)
    assert _violations(conn) == []
    memberships = conn.execute(
        "SELECT count(*) FILTER (WHERE n = 0), max(n) FROM (SELECT p.id, "
        "count(pc.id) n FROM pacientes p LEFT JOIN pacientes_convenios pc "
        "ON pc.paciente_id = p.id GROUP BY p.id) x"
    ).fetchone()
    assert memberships is not None and memberships[0] > 0 and memberships[1] == 3


def test_custom_overrides_and_the_warning(
    database: str, cli_env: dict[str, str]
) -> None:
    env = {
        **cli_env,
        "SEED_SIZE": "CUSTOM",
        "SEED_PRODUCTS": "7",
        "SEED_SALES": "4",
        "SEED_PACIENTES": "30",
    }
    result = run_cli("seed", "--dsn", database, env=env)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(database) as c:
        counts = _counts(c)
    assert (counts["products"], counts["sales"], counts["pacientes"]) == (7, 4, 30)
    assert counts["clients"] == resolve("MEDIUM").count("clients")
    ignored = run_cli(
        "seed",
        "--profile",
        "LARGE",
        "--dry-run",
        "--dsn",
        database,
        env={**cli_env, "SEED_PRODUCTS": "7"},
    )
    assert ignored.returncode == 0
    assert "warning: SEED_PRODUCTS ignored" in ignored.stderr
    assert "SEED_SIZE=CUSTOM" in ignored.stderr and "5,000" in ignored.stdout


def test_bad_override_is_exit_2(cli_env: dict[str, str]) -> None:
    result = run_cli(
        "seed",
        "--dry-run",
        env={**cli_env, "SEED_SIZE": "CUSTOM", "SEED_SALES": "many"},
    )
    assert result.returncode == 2
    assert "invalid SEED_SALES='many'" in result.stderr


def test_a_failing_stage_leaves_nothing(conn: psycopg.Connection) -> None:
    class Boom(Exception):
        pass

    def explode(stage: Stage, done: int) -> None:
        if stage.table == "consultas" and done >= 100:
            raise Boom

    profile = resolve("CUSTOM", {"SEED_BATCH_SIZE": ("100", "test")})
    with pytest.raises(Boom):
        Seeder(conn, progress=explode).run(plan(select("hospital"), profile))
    counts = _counts(conn)
    assert counts["consultas"] == 0  # the stage rolled back whole
    assert counts["pacientes"] == 2000  # earlier stages stay committed
    assert counts["exames"] == 0  # later stages never ran


def test_rerun_is_idempotent(conn: psycopg.Connection) -> None:
    stages = plan(select("all"), resolve("SMALL"))
    Seeder(conn).run(stages)
    first = _counts(conn)
    results = {r.table: r for r in Seeder(conn).run(stages)}
    second = _counts(conn)
    for table in (
        "medicos",
        "convenios",
        "pacientes",
        "pacientes_convenios",
        "suppliers",
        "stores",
        "products",
        "clients",
    ):
        assert second[table] == first[table], table
        assert results[table].written == 0
    for table in ("consultas", "exames", "internacoes", "sales"):
        assert second[table] == 2 * first[table], table
    assert _violations(conn) == []


def test_factories_continue_after_seeding(conn: psycopg.Connection) -> None:
    Seeder(conn).run(plan(select("hospital"), resolve("SMALL")))
    with bind(conn, seed=0):
        patient = h.Paciente.create()
        doctor = h.Medico.create()
    assert patient["id"] == 201 and doctor["crm"]


def _checksum(server: ServerInfo, seed: int) -> dict[str, str]:
    with scratch_database(server, "seed") as dsn:
        result = run_cli_seed(dsn, seed)
        assert result.returncode == 0, result.stderr
        sums = {}
        with psycopg.connect(dsn) as c:
            for table in ALL_TABLES:
                columns = [
                    r[0]
                    for r in c.execute(
                        "SELECT column_name FROM information_schema.columns WHERE "
                        "table_name = %s AND column_name NOT IN ('created_at', "
                        "'updated_at') ORDER BY ordinal_position",
                        (table,),
                    )
                ]
                rows = c.execute(
                    f"SELECT {', '.join(columns)} FROM {table} "  # type: ignore[arg-type]
                    "ORDER BY id"
                ).fetchall()
                sums[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return sums


def run_cli_seed(dsn: str, seed: int):  # type: ignore[no-untyped-def]
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEED_", "PG", "DATABASE_URL", "APP_ENV"))
    }
    return run_cli(
        "seed", "--profile", "SMALL", "--seed-random", str(seed), "--dsn", dsn, env=env
    )


def test_same_seed_same_database(oltp_server: ServerInfo) -> None:
    first = _checksum(oltp_server, 0)
    assert _checksum(oltp_server, 0) == first
    other = _checksum(oltp_server, 1)
    assert other["pacientes"] != first["pacientes"]
    assert other["sale_items"] != first["sale_items"]


def test_seed_command_output(database: str, cli_env: dict[str, str]) -> None:
    result = run_cli("seed", "--profile", "SMALL", "--dsn", database, env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "seeded SMALL" in result.stdout and "rows written" in result.stdout
    assert "seed: pacientes 200/200 rows" in result.stderr
    again = run_cli("reset", "--profile", "SMALL", "--dsn", database, env=cli_env)
    assert again.returncode == 0, again.stderr
    with psycopg.connect(database) as c:
        assert c.execute("SELECT count(*) FROM consultas").fetchone() == (400,)


def _schema_shape(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE contype IN ('f', 'p', 'u') UNION ALL "
        "SELECT oid::regclass::text, 'replica identity', relreplident::text "
        "FROM pg_class WHERE oid::regclass::text = ANY(%(t)s) UNION ALL "
        "SELECT indrelid::regclass::text, indexrelid::regclass::text, "
        "pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid::regclass::text = ANY(%(t)s) ORDER BY 1, 2, 3",
        {"t": ALL_TABLES},
    ).fetchall()


def _dump_all(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    dump = {}
    for table in ALL_TABLES:
        dump[table] = conn.execute(
            f"SELECT * FROM {table} ORDER BY id"  # type: ignore[arg-type]
        ).fetchall()
        dump[table] = [row[:-2] for row in dump[table]]  # created_at, updated_at
    return dump


def test_workers_and_deferral_change_nothing_but_speed(
    oltp_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large-stage machinery on SMALL volumes: same rows, same schema after."""

    dumps = []
    for workers, threshold in ((0, 10**9), (2, 50)):
        monkeypatch.setattr(seeder, "PARALLEL_AT", threshold)
        monkeypatch.setattr(seeder, "DEFER_AT", threshold)
        with scratch_database(oltp_server, "w") as dsn, psycopg.connect(dsn) as c:
            schema.install(c, select("all"))
            c.commit()
            before = _schema_shape(c)
            Seeder(c, workers=workers).run(plan(select("all"), resolve("SMALL")))
            assert _schema_shape(c) == before  # FKs and indexes restored as-is
            assert _violations(c) == []
            dumps.append(_dump_all(c))
    assert dumps[0] == dumps[1]


def test_failure_in_a_deferred_stage_restores_constraints(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(seeder, "DEFER_AT", 50)
    before = _schema_shape(conn)

    def explode(stage: Stage, done: int) -> None:
        if stage.table == "consultas":
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError):
        Seeder(conn, progress=explode).run(plan(select("hospital"), resolve("SMALL")))
    assert _schema_shape(conn) == before
    assert conn.execute("SELECT count(*) FROM consultas").fetchone() == (0,)


def test_copy_text_survives_awkward_strings(conn: psycopg.Connection) -> None:
    from pytest_oltpseed.seed.chunks import copy_text

    awkward = "tab\there\nnew line \\ back\\slash\r end"
    line = "\t".join(copy_text(v) for v in ("Nome", awkward, None)) + "\n"
    conn.execute("CREATE TEMP TABLE t (a text, b text, c text)")
    with conn.cursor() as cur, cur.copy("COPY t (a, b, c) FROM STDIN") as copy:
        copy.write(line)
    assert conn.execute("SELECT a, b, c FROM t").fetchone() == ("Nome", awkward, None)


def test_independent_stages_share_lanes_dependent_ones_wait(
    conn: psycopg.Connection,
) -> None:
    """Hospital: doctors, plans and patients need nothing; the four stages
    after them need only those, so they may run at once."""
    stages = plan(select("hospital"), resolve("SMALL"))
    lanes = seeder._Lanes(Seeder(conn, workers=2), stages, 2)
    names = [s.table for s in stages]
    after = {
        names[i]: sorted(names[j] for j in deps) for i, deps in enumerate(lanes.after)
    }
    assert after["medicos"] == after["pacientes"] == []
    assert after["consultas"] == ["medicos", "pacientes"]
    assert after["exames"] == ["pacientes"]
    assert after["pacientes_convenios"] == ["convenios", "pacientes"]
    assert not any(lanes.alone) and lanes.useful()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_stages_with_rules_keep_their_domains_order_beside_other_domains(
    conn: psycopg.Connection,
) -> None:
    """Retail's header stages (items, the stock rule) wait for every retail
    stage before them and hold back every one after them, but need nothing
    of the hospital's: in ``--domain all`` they share the hospital's lanes."""
    stages = plan(select("all"), resolve("SMALL"))
    lanes = seeder._Lanes(Seeder(conn, workers=2), stages, 2)
    names = [s.table for s in stages]
    after = {names[i]: {names[j] for j in deps} for i, deps in enumerate(lanes.after)}
    retail = [s.table for s in stages if s.domain.name == "retail"]
    hospital = set(names) - set(retail)
    assert not any(lanes.alone)
    for table in ("product_entries", "internal_distributions", "sales"):
        earlier = retail[: retail.index(table)]
        assert after[table] == set(earlier)  # its domain's order, no hospital
        assert all(table in after[t] for t in retail[retail.index(table) + 1 :])
        assert not after[table] & hospital
    assert after["clients"] == set()  # rule-free: only its FKs' parents
    assert lanes.useful()
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_planning_lanes_does_not_wait_for_numpy(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a large stage would fork is decided without importing NumPy:
    the lanes start while its import runs on a thread (it once held every
    stage back until the import was done)."""
    from pytest_oltpseed.data import columns

    def no_wait() -> bool:
        raise AssertionError("the lanes' plan waited for NumPy's import")

    monkeypatch.setattr(columns, "load_numpy", no_wait)
    stages = plan(select("hospital"), resolve("LARGE"))
    lanes = seeder._Lanes(Seeder(conn, workers=2), stages, 2)
    assert not any(lanes.alone)  # column-wise: none forks, all may share lanes


def test_interrupted_lanes_leave_the_schema_as_before(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while two large stages run at once on two connections: both
    roll back whole (indexes back, no FK touched), earlier stages stay, and
    the seeder says which committed."""
    import os
    import signal
    import threading
    import time

    monkeypatch.setattr(seeder, "DEFER_AT", 50)  # the index drop/restore path
    before = _schema_shape(conn)
    conn.rollback()  # lanes start from outside a transaction
    overrides = {"SEED_PACIENTES_CONVENIOS": "10", "SEED_CONSULTAS": "20000"}
    overrides["SEED_EXAMES"] = "20000"  # several chunks each: stopped mid-copy
    profile = resolve("CUSTOM", {k: (v, "test") for k, v in overrides.items()})
    stages = plan(select("hospital"), profile)
    both = threading.Barrier(2, timeout=30)

    def interrupt(stage: Stage, done: int) -> None:
        # Each of the two holds after its first chunk until the other is there
        # too; then Ctrl-C, while both are mid-copy on their own connection.
        if stage.table in ("consultas", "exames") and done < stage.count:
            if both.wait() == 0:
                os.kill(os.getpid(), signal.SIGINT)  # to the main thread
            time.sleep(0.5)  # the main thread stops the lanes meanwhile

    job = Seeder(conn, workers=2, progress=interrupt)
    # Python's own handler, even where SIGINT came in ignored (a suite run in
    # the background): a terminal's Ctrl-C is what this test plays
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            job.run(stages)
    finally:
        signal.signal(signal.SIGINT, handler)
    assert _schema_shape(conn) == before
    counts = _counts(conn)
    committed = {r.table for r in job.done}
    assert {"medicos", "pacientes"} <= committed  # the parents of both
    assert not committed & {"consultas", "exames"}  # both were mid-copy
    for stage in stages:
        expected = stage.count if stage.table in committed else 0
        assert counts[stage.table] == expected + LOOKUPS.get(stage.table, 0)
    message = seeder.interrupted(stages, job.done)
    assert "--only" in message and "consultas" in message


def test_set_based_fk_check_fails_a_stage_with_an_orphan(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the FK triggers off during the copy, the check at the stage's end
    still refuses a row without its parent, and the stage leaves nothing."""
    stages = plan(select("hospital"), resolve("SMALL"))
    Seeder(conn).run([s for s in stages if s.table in ("medicos", "pacientes")])
    before = _schema_shape(conn)
    consultas = next(s for s in stages if s.table == "consultas")
    with conn.transaction():
        assert seeder._SetChecked.start(conn, consultas) is not None  # superuser
        raise psycopg.Rollback()
    real_init = seeder.ParentPool.__init__

    def shifted(self, conn, table, carry):  # type: ignore[no-untyped-def]
        real_init(self, conn, table, carry)
        if table == "pacientes":  # every visit points past the last patient
            self.ids = array("q", [i + 10**9 for i in self.ids])

    monkeypatch.setattr(seeder.ParentPool, "__init__", shifted)
    with pytest.raises(OltpseedError, match="violates consultas_paciente_id"):
        Seeder(conn).run([consultas])
    assert conn.execute("SELECT count(*) FROM consultas").fetchone() == (0,)
    assert _schema_shape(conn) == before


def test_set_based_fk_check_holds_the_parents_until_the_stage_commits(
    conn: psycopg.Connection, database: str
) -> None:
    """The copied rows took no lock on their parents (their FK triggers were
    off), so once checked, a parent may not be deleted before the stage
    commits: it would leave the new rows orphans. Readers still pass."""
    stages = plan(select("hospital"), resolve("SMALL"))
    Seeder(conn).run([s for s in stages if s.table in ("medicos", "pacientes")])
    consultas = next(s for s in stages if s.table == "consultas")
    patient = conn.execute("SELECT min(id) FROM pacientes").fetchone()
    conn.commit()
    with psycopg.connect(database, autocommit=True) as other:
        other.execute("SET lock_timeout = 300")
        with conn.transaction():
            checked = seeder._SetChecked.start(conn, consultas)
            assert checked is not None
            conn.execute(
                "INSERT INTO consultas (paciente_id, medico_id, data, motivo, status) "
                "SELECT %s, min(id), now(), 'retorno', 'agendada' FROM medicos",
                patient,
            )
            checked.triggers_back()
            checked.validate()
            assert other.execute("SELECT count(*) FROM pacientes").fetchone()
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("DELETE FROM pacientes WHERE id = %s", patient)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # committed now
            other.execute("DELETE FROM pacientes WHERE id = %s", patient)


def test_parent_pools_take_a_gapless_id_range_and_serve_narrower_requests(
    conn: psycopg.Connection,
) -> None:
    """A freshly seeded table's ids are one range: the pool takes it from
    min, max and count instead of fetching every id, and equals the fetched
    one; with a gap it fetches. A pool carrying a column also serves a
    request without it (one load of the patients, not two)."""
    from datetime import datetime

    np = pytest.importorskip("numpy")
    stages = plan(select("hospital"), resolve("SMALL"))
    Seeder(conn).run([s for s in stages if s.table in ("medicos", "pacientes")])

    def fetched(table: str) -> list[int]:
        pool = seeder.ParentPool.__new__(seeder.ParentPool)
        pool.table, pool.carry, pool.values = table, (), {}
        pool.ids = array("q")
        pool._fetch(conn)
        return list(pool.ids)

    taken = seeder.ParentPool(conn, "pacientes", ())
    assert list(taken.ids) == fetched("pacientes") and len(taken) == 200
    conn.execute("DELETE FROM pacientes WHERE id = (SELECT min(id) + 5 FROM pacientes)")
    gapped = seeder.ParentPool(conn, "pacientes", ())
    assert list(gapped.ids) == fetched("pacientes") and len(gapped) == 199

    job = Seeder(conn)
    wide = job.pool("pacientes", ("data_cadastro",))
    assert job.pool("pacientes") is wide
    # carried timestamps to seconds: exact, floored as to_seconds floors
    moments = [
        datetime(1969, 12, 31, 23, 59, 59, 999_999),
        datetime(2025, 3, 1, 8, 0, 0, 1),
    ]
    wide.values["data_cadastro"][:2] = moments
    seconds = wide.seconds("data_cadastro")
    expected = np.array(wide.values["data_cadastro"], dtype="datetime64[us]")
    assert seconds.tolist() == (expected.astype(np.int64) // 1_000_000).tolist()
    assert seconds[:2].tolist() == [-1, 1740816000]


def test_carried_null_timestamps_stay_null() -> None:
    """A parent's carried timestamp column with a NULL (NumPy's conversion
    path) keeps the NULL as the vocabulary's NULL_TIME, not a far past."""
    from datetime import datetime

    from pytest_oltpseed.data import columns
    from pytest_oltpseed.seed.parents import ParentPool

    pool = object.__new__(ParentPool)
    moment = datetime(2024, 1, 1, 0, 0, 1, 500)
    pool.values = {"at": [moment, None]}
    pool._seconds = {}
    assert pool.seconds("at").tolist() == [
        columns.to_seconds(moment),
        columns.NULL_TIME,
    ]


def _keys_of(conn: psycopg.Connection, table: str) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype IN ('p', 'u') ORDER BY 1",
            (table,),
        )
    ]


def test_an_empty_tables_keys_are_built_after_its_load(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``pgbench -i`` does: a large stage into an empty table loads
    without its own primary key and unique constraints and builds them at
    its end; a parent's key, which its children's FKs rest on, stays."""
    monkeypatch.setattr(seeder, "DEFER_AT", 50)
    during: dict[str, list[str]] = {}

    def look(stage: Stage, done: int) -> None:
        for table in (stage.table, "pacientes"):
            during.setdefault(f"{stage.table}:{table}", _keys_of(conn, table))

    before = {t: _keys_of(conn, t) for t in ("pacientes", "pacientes_convenios")}
    Seeder(conn, progress=look).run(plan(select("hospital"), resolve("SMALL")))
    assert before["pacientes_convenios"] == [
        "pacientes_convenios_paciente_id_convenio_id_key",
        "pacientes_convenios_pkey",
    ]
    assert during["pacientes_convenios:pacientes_convenios"] == []
    assert during["consultas:consultas"] == []
    # pacientes' own unique cpf goes; its PK has FKs on it and stays
    assert during["pacientes:pacientes"] == ["pacientes_pkey"]
    assert during["consultas:pacientes"] == before["pacientes"]
    for table, keys in before.items():
        assert _keys_of(conn, table) == keys
    assert _violations(conn) == []


def test_keys_stay_through_the_load_when_a_slot_may_decode_it(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logical slot on the database would decode the stage's INSERTs with
    the relation as it was then: without its key, a CDC consumer would get
    keyless records. With a slot, every key stays through the load."""
    import uuid

    monkeypatch.setattr(seeder, "DEFER_AT", 50)
    slot = f"keys_{uuid.uuid4().hex[:10]}"
    conn.execute(
        "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,)
    )
    conn.commit()
    try:
        during: dict[str, list[str]] = {}

        def look(stage: Stage, done: int) -> None:
            during.setdefault(stage.table, _keys_of(conn, stage.table))

        Seeder(conn, progress=look).run(plan(select("hospital"), resolve("SMALL")))
        assert during["consultas"] == ["consultas_pkey"]
        assert during["pacientes_convenios"] == [
            "pacientes_convenios_paciente_id_convenio_id_key",
            "pacientes_convenios_pkey",
        ]
        assert during["pacientes"] == ["pacientes_cpf_key", "pacientes_pkey"]
    finally:
        conn.rollback()
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.commit()


def test_a_duplicate_fails_the_rebuilt_key_and_the_stage_rolls_back(
    conn: psycopg.Connection,
) -> None:
    """Building the key after the load checks every row, as the index kept
    up to date would have: a duplicate fails the stage, which leaves
    nothing, and the key is back as it was."""
    from pytest_oltpseed.seed.constraints import _Deferred

    stage = next(
        s for s in plan(select("hospital"), resolve("SMALL")) if s.table == "exames"
    )
    before = _keys_of(conn, "exames")
    with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
        deferred = _Deferred(conn, stage, keep_foreign_keys=True, keys=True)
        assert _keys_of(conn, "exames") == []
        conn.execute("SET LOCAL session_replication_role = replica")  # no parents
        conn.execute(
            "INSERT INTO exames (id, paciente_id, tipo_exame, data) VALUES "
            "(7, 1, 'Hemograma', now()), (7, 2, 'Glicemia', now())"
        )
        deferred.restore()
    assert _keys_of(conn, "exames") == before
    assert conn.execute("SELECT count(*) FROM exames").fetchone() == (0,)


def test_a_table_with_rows_keeps_its_keys(conn: psycopg.Connection) -> None:
    """Rebuilding a key over rows already there would cost more than it
    saves (and a rerun's upserts need it): only empty tables lose theirs."""
    from pytest_oltpseed.seed.constraints import _Deferred

    Seeder(conn).run(plan(select("hospital"), resolve("SMALL")))
    stage = next(
        s for s in plan(select("hospital"), resolve("SMALL")) if s.table == "exames"
    )
    with conn.transaction():
        assert _Deferred(conn, stage, keep_foreign_keys=True, keys=True).keys == []
        assert _keys_of(conn, "exames") == ["exames_pkey"]


def test_lanes_take_the_longest_chain_first_and_headers_share_them(
    conn: psycopg.Connection,
) -> None:
    """At STRESS, retail's header stages (generated in order, never forked)
    share the lanes instead of running alone, and once the patients are in,
    free lanes take the largest stages first, so the last stage to finish
    is not the largest, alone."""
    stages = plan(select("all"), resolve("STRESS"))
    lanes = seeder._Lanes(Seeder(conn, workers=2), stages, 2)
    names = [s.table for s in stages]
    for table in HEADERS:
        assert not lanes.alone[names.index(table)]
    finished = {
        names.index(t) for t in ("medicos", "convenios", "pacientes", "suppliers")
    }
    ready = lanes._ready(set(finished), finished, {})
    assert [names[i] for i in ready] == ["consultas", "exames"]
    conn.rollback()


def test_an_id_block_holds_off_other_writers_and_moves_past_its_rows(
    conn: psycopg.Connection, database: str
) -> None:
    """A large stage numbers its rows from a block of the table's sequence:
    while it runs, another writer's ``nextval`` waits (it cannot take a key
    the stage is writing); after, it gets the key past the block. A stage
    that fails leaves the sequence where it was."""
    from pytest_oltpseed.seed.ids import IdBlock

    def other_nextval(timeout_ms: int) -> int | None:
        with psycopg.connect(database, autocommit=True) as other:
            other.execute(f"SET lock_timeout = {timeout_ms}")
            try:
                row = other.execute("SELECT nextval('exames_id_seq')").fetchone()
            except psycopg.errors.LockNotAvailable:
                return None
            return int(row[0]) if row else None

    first = other_nextval(1000)
    assert first is not None
    with conn.transaction():
        block = IdBlock.take(conn, "exames", 100)
        assert block is not None and (block.column, block.first) == ("id", first + 1)
        assert other_nextval(200) is None  # waits for the stage
        block.finish(100)
    assert other_nextval(1000) == first + 101
    with pytest.raises(RuntimeError), conn.transaction():
        failed = IdBlock.take(conn, "exames", 100)
        assert failed is not None and failed.first == first + 102
        raise RuntimeError("the stage fails before its rows are in")
    assert other_nextval(1000) == first + 102


def test_a_large_stage_numbers_its_rows_as_the_default_would(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys a block gives are those the column's default would have:
    after rows already there, gapless, and the sequence left past them."""
    from pytest_oltpseed.seed.ids import IdBlock

    monkeypatch.setattr(seeder, "DEFER_AT", 50)
    taken: list[str] = []
    take = IdBlock.take.__func__  # type: ignore[attr-defined]

    def spy(
        cls: type[IdBlock], conn: psycopg.Connection, table: str, *rest: Any
    ) -> Any:
        block = take(cls, conn, table, *rest)
        taken.append(table if block else f"no block: {table}")
        return block

    monkeypatch.setattr(IdBlock, "take", classmethod(spy))
    stages = plan(select("hospital"), resolve("SMALL"))
    Seeder(conn).run(stages)
    assert "exames" in taken and not [t for t in taken if t.startswith("no")]
    Seeder(conn).run([s for s in stages if s.table == "exames"])  # a second run
    total = 2 * next(s.count for s in stages if s.table == "exames")
    assert conn.execute("SELECT min(id), max(id), count(*) FROM exames").fetchone() == (
        1,
        total,
        total,
    )
    assert conn.execute("SELECT nextval('exames_id_seq')").fetchone() == (total + 1,)
    conn.rollback()


def test_keys_that_would_not_come_back_as_they_were_stay(
    conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key a view groups by (the view depends on it), one with storage
    parameters or a comment (``ADD CONSTRAINT`` would not bring those back)
    stays through the load; the stage succeeds and the key is as it was."""
    monkeypatch.setattr(seeder, "DEFER_AT", 50)
    conn.execute(
        "CREATE VIEW exames_por_id AS SELECT e.id, e.tipo_exame, count(*) AS n "
        "FROM exames e GROUP BY e.id"
    )
    conn.execute("ALTER INDEX consultas_pkey SET (fillfactor = 70)")
    conn.execute("COMMENT ON CONSTRAINT internacoes_pkey ON internacoes IS 'chave'")
    conn.commit()
    during: dict[str, list[str]] = {}

    def look(stage: Stage, done: int) -> None:
        during.setdefault(stage.table, _keys_of(conn, stage.table))

    Seeder(conn, progress=look).run(plan(select("hospital"), resolve("SMALL")))
    assert during["exames"] == ["exames_pkey"]
    assert during["consultas"] == ["consultas_pkey"]
    assert during["internacoes"] == ["internacoes_pkey"]
    assert during["pacientes_convenios"] == []  # nothing of that kind: rebuilt
    options = conn.execute(
        "SELECT reloptions FROM pg_class WHERE relname = 'consultas_pkey'"
    ).fetchone()
    assert options == (["fillfactor=70"],)
    assert conn.execute("SELECT count(*) FROM exames_por_id").fetchone() == (350,)


def test_no_id_block_where_the_sequence_or_the_factory_says_otherwise(
    conn: psycopg.Connection,
) -> None:
    """A cycling sequence (the lock must not change it), a key the factory
    writes itself, a sequence another table's default also draws from: the
    column's default numbers the rows, and the sequence is as it was."""
    from pytest_oltpseed.seed.ids import IdBlock

    assert IdBlock.take(conn, "exames", 10, ["id", "paciente_id"]) is None
    conn.execute("ALTER SEQUENCE exames_id_seq CYCLE")
    assert IdBlock.take(conn, "exames", 10) is None
    cycling = conn.execute(
        "SELECT seqcycle FROM pg_sequence WHERE seqrelid = 'exames_id_seq'::regclass"
    ).fetchone()
    assert cycling == (True,)
    conn.execute("ALTER SEQUENCE exames_id_seq NO CYCLE")
    conn.execute(
        "CREATE TABLE exames_copia (id bigint DEFAULT nextval('exames_id_seq'))"
    )
    assert IdBlock.take(conn, "exames", 10) is None
    conn.execute("DROP TABLE exames_copia")
    block = IdBlock.take(conn, "exames", 10)
    assert block is not None and block.column == "id"
    conn.rollback()


def test_a_self_reference_is_checked_without_locking_the_stages_own_table(
    conn: psycopg.Connection,
) -> None:
    """The SHARE lock goes to the parents only: the stage's own tables (a
    self-reference, a header) are written by this stage, and two stages
    locking their own tables would deadlock each other."""
    from types import SimpleNamespace

    conn.execute(
        "CREATE TABLE setores (id bigserial PRIMARY KEY, pai bigint "
        "REFERENCES setores (id), paciente_id bigint REFERENCES pacientes (id))"
    )
    conn.commit()
    stage = SimpleNamespace(table="setores", item_tables=[])
    with conn.transaction():
        checked = seeder._SetChecked.start(conn, stage)  # type: ignore[arg-type]
        assert checked is not None
        conn.execute("INSERT INTO setores (pai) VALUES (NULL)")
        checked.triggers_back()
        checked.validate()
        locked = dict(
            conn.execute(
                "SELECT c.relname::text, l.mode FROM pg_locks l JOIN pg_class c "
                "ON c.oid = l.relation WHERE l.pid = pg_backend_pid() "
                "AND c.relname IN ('setores', 'pacientes') AND l.mode = 'ShareLock'"
            ).fetchall()
        )
        assert locked == {"pacientes": "ShareLock"}
