"""``oltpseed stream`` against real faults; every test ends by reconciling the
database's row-count changes with the report the stream wrote."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pytest_oltpseed.data import indices
from pytest_oltpseed.server.embedded import ServerInfo
from tests.conftest import run_cli
from tests.stream_helpers import (
    ack_dropper,
    assert_reconciled,
    committed_in,
    counts,
    read_report,
    seed,
    start_stream,
    stream_env,
    terminate_backends,
    wait_for,
)

FULL_ID = re.compile(r"\d{3}\.\d{3}\.\d{3}-\d{2}|\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}")


def test_clean_run_counts_equal_database_and_server_statistics(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    before = counts(database)
    with psycopg.connect(database) as conn:
        stats_before = _tuple_stats(conn)
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", database, "--interval", "0", "--jitter-ms", "0",
        "--max-events", "1500", "--report", str(report),
        env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = read_report(report)
    assert document["exit"] == "completed"
    assert document["events"]["committed"] + document["events"]["skipped"] == 1500
    assert document["events"]["skipped"] == 0
    assert sum(document["events"]["by_type"].values()) == 1500
    assert_reconciled(before, counts(database), document)
    # Without any rolled-back work the server's own tuple counters must agree
    # with the report for updates and deletes too. A backend flushes them as
    # it exits, just after its client has gone: allow it a moment.
    expected = {
        table: {op: stats_before[table][op] + n for op, n in ops.items()}
        for table, ops in document["tables"].items()
    }

    def flushed() -> bool:
        with psycopg.connect(database) as conn:
            stats = _tuple_stats(conn)
        return all(stats[t] == expected[t] for t in expected)

    wait_for(flushed, timeout=15, what="the stream's statistics")
    assert set(document["latency_ms"]) >= {"p50", "p95", "p99"}
    assert document["events_per_s"] > 0
    checked = run_cli("check", "--dsn", database, "--json", env=cli_env)
    broken = [r for r in json.loads(checked.stdout)["rules"] if r["violations"]]
    assert broken == []  # row rules and the mixes alike (docs/stream.md)


def _tuple_stats(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
    ).fetchall()
    conn.rollback()
    return {r[0]: {"insert": r[1], "update": r[2], "delete": r[3]} for r in rows}


def test_terminated_backend_mid_run_reconnects(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    before = counts(database)
    env = stream_env(cli_env)
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", database, "--rate", "300", "--batch-size", "20",
        "--duration", "8", "--progress", "0.3", "--report", str(report),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 100, what="first commits")
    assert terminate_backends(database, env["PG_APPLICATION_NAME"]) >= 1
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["reconnects"] >= 1
    assert document["events"]["committed"] > 200
    assert "connection lost" in err and "reconnected" in err
    assert_reconciled(before, counts(database), document)


def test_sigterm_mid_batch_commits_the_completed_part(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    # 200 events/s in batches of 5,000: the first batch is still open at 1.5 s
    proc = start_stream(
        stream_env(cli_env), "--dsn", database, "--domain", "hospital",
        "--rate", "200", "--batch-size", "5000", "--report", str(report),
    )  # fmt: skip
    log = Path(cli_env["LOG_DIR"]) / "stream.log"
    wait_for(lambda: "events novo_paciente" in log.read_text(), what="the start")
    time.sleep(1.5)
    assert counts(database, "hospital") == before  # nothing committed yet
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["exit"] == "stopped"
    assert document["batches"] == 1
    assert document["events"]["committed"] > 50
    assert "SIGTERM received" in err
    assert "stream stopped" in out  # the summary
    assert_reconciled(before, counts(database, "hospital"), document)


def test_second_sigint_aborts_with_rollback(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    proc = start_stream(
        stream_env(cli_env), "--dsn", database, "--domain", "hospital",
        "--rate", "200", "--batch-size", "20", "--report", str(report),
        "--progress", "0.2",
    )  # fmt: skip
    wait_for(lambda: committed_in(report) >= 100, what="first commits")
    with psycopg.connect(database) as blocker:
        # the stream's next batch waits on this lock: a first SIGINT cannot
        # finish it, a second one aborts it
        blocker.execute("LOCK TABLE consultas IN ACCESS EXCLUSIVE MODE")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        blocker.rollback()
    assert proc.returncode == 130, err
    assert "aborted by a second signal" in err
    assert "Traceback" not in err
    document = read_report(report)
    assert document["exit"] == "aborted"
    assert_reconciled(before, counts(database, "hospital"), document)


def test_unique_collision_is_skipped_and_masked(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    with psycopg.connect(database) as conn:  # hand out three CPFs already taken
        name = indices.sequence_name("hospital", "pacientes.cpf")
        conn.execute(
            f"SELECT setval('{name}', last_value + is_called::int - 3, false) "
            f"FROM {name}"
        )
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    env = stream_env(cli_env)
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--max-events", "600", "--report", str(report), "--weights",
        "novo_paciente=100", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = read_report(report)
    # Events that drew a taken CPF are skipped, others are not. (One cut short
    # by the error surfacing mid-event is made anew with a fresh CPF, so up to
    # three, and at least the ones that completed.)
    skipped = document["events"]["skipped"]
    assert 1 <= skipped <= 3
    assert document["events"]["skipped_by_type"] == {"novo_paciente": skipped}
    assert document["events"]["committed"] == 600 - skipped
    assert "UniqueViolation" in done.stderr
    logged = (Path(env["LOG_DIR"]) / "stream.log").read_text(encoding="utf-8")
    assert "UniqueViolation" in logged and "skipped" in logged
    assert not FULL_ID.search(logged + done.stderr)
    assert_reconciled(before, counts(database, "hospital"), document)


def test_pause_and_resume(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    env = stream_env(cli_env, STREAM_PAUSE_FILE=str(tmp_path / "sentinel"))
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", database, "--domain", "hospital", "--interval", "0.2",
        "--jitter-ms", "0", "--batch-size", "5", "--progress", "0.2",
        "--report", str(report),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) >= 10, what="first commits")
    paused = run_cli("pause", env=env)
    assert paused.returncode == 0 and "paused" in paused.stdout
    time.sleep(0.8)  # the cycle under way ends
    frozen = counts(database, "hospital")
    time.sleep(1.5)
    assert counts(database, "hospital") == frozen
    resumed = run_cli("resume", env=env)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    wait_for(lambda: counts(database, "hospital") != frozen, what="resumed writes")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "paused" in err and "resumed after" in err
    document = read_report(report)
    assert document["paused_s"] >= 1.5
    assert_reconciled(before, counts(database, "hospital"), document)


def test_pause_from_any_directory_reaches_the_database_stream(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """No pause file configured: `oltpseed pause` run elsewhere finds the
    stream through the database's own sentinel under OLTPSEED_HOME."""
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    env = stream_env(cli_env, OLTPSEED_HOME=str(tmp_path / "home"))
    places = [tmp_path / name for name in ("stream", "pause", "resume")]
    for place in places:
        place.mkdir()
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", database, "--domain", "hospital", "--interval", "0.2",
        "--jitter-ms", "0", "--batch-size", "5", "--progress", "0.2",
        "--report", str(report), cwd=places[0],
    )  # fmt: skip
    wait_for(lambda: committed_in(report) >= 10, what="first commits")
    paused = run_cli("pause", "--dsn", database, env=env, cwd=places[1])
    assert paused.returncode == 0 and "paused:" in paused.stdout, paused.stderr
    assert str(tmp_path / "home" / "paused") in paused.stdout
    time.sleep(0.8)
    frozen = counts(database, "hospital")
    time.sleep(1.5)
    assert counts(database, "hospital") == frozen
    resumed = run_cli("resume", "--dsn", database, env=env, cwd=places[2])
    assert resumed.returncode == 0 and "resumed: removed" in resumed.stdout
    wait_for(lambda: counts(database, "hospital") != frozen, what="resumed writes")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "resumed after" in err
    assert [list(place.iterdir()) for place in places] == [[], [], []]
    assert read_report(report)["paused_s"] >= 1.5
    assert_reconciled(before, counts(database, "hospital"), read_report(report))


def test_lost_commit_acknowledgement_is_settled(
    oltp_server: ServerInfo, database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    dbname = psycopg.conninfo.conninfo_to_dict(database)["dbname"]
    with ack_dropper(oltp_server.host, oltp_server.port) as proxy:
        via_proxy = make_conninfo(
            host="127.0.0.1", port=str(proxy.port), user=oltp_server.user,
            dbname=str(dbname),
        )  # fmt: skip
        proc = start_stream(
            stream_env(cli_env), "--dsn", via_proxy, "--domain", "hospital",
            "--rate", "300", "--batch-size", "30", "--duration", "6",
            "--progress", "0.3", "--report", str(report),
        )  # fmt: skip
        wait_for(lambda: committed_in(report) > 60, what="first commits")
        proxy.armed = True
        _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert proxy.dropped == 1
    document = read_report(report)
    assert document["settled_commits"] == {"committed": 1}
    assert "lost its acknowledgement" in err
    assert_reconciled(before, counts(database, "hospital"), document)


def test_server_stopped_and_started_mid_run(
    server_home: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = stream_env(cli_env, OLTPSEED_HOME=str(server_home))
    assert run_cli("server", "start", env=env).returncode == 0
    dsn = _embedded_dsn(env)
    seed(dsn, domain="hospital")
    before = counts(dsn, "hospital")
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", dsn, "--domain", "hospital", "--rate", "200",
        "--duration", "10", "--progress", "0.3", "--report", str(report),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 100, what="first commits")
    assert run_cli("server", "stop", env=env).returncode == 0
    time.sleep(2)
    assert run_cli("server", "start", env=env).returncode == 0
    assert _embedded_dsn(env) == dsn  # same port again
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["reconnects"] >= 1
    assert document["events"]["committed"] > 200
    assert_reconciled(before, counts(dsn, "hospital"), document)


def test_gives_up_when_the_server_stays_down(
    server_home: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = stream_env(
        cli_env, OLTPSEED_HOME=str(server_home), STREAM_RECONNECT_ATTEMPTS="3"
    )
    assert run_cli("server", "start", env=env).returncode == 0
    dsn = _embedded_dsn(env)
    seed(dsn, domain="hospital")
    before = counts(dsn, "hospital")
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", dsn, "--domain", "hospital", "--rate", "200",
        "--progress", "0.3", "--report", str(report),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 100, what="first commits")
    assert run_cli("server", "stop", env=env).returncode == 0
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("oltpseed: error: stream: gave up after 3 reconnect")
    assert "Traceback" not in err
    assert "stream gave up" in out  # the summary is printed on this path too
    document = read_report(report)
    assert document["exit"] == "gave_up"
    assert run_cli("server", "start", env=env).returncode == 0
    assert_reconciled(before, counts(dsn, "hospital"), document)


def _embedded_dsn(env: dict[str, str]) -> str:
    done = run_cli("server", "dsn", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_three_streams_on_one_database_lose_nothing(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Concurrent streams deadlock now and then (they update the same rows in
    different orders); a deadlock is a soft error: the batch is rolled back
    and replayed, never dropped as a lost connection."""
    seed(database)
    before = counts(database)
    runs = []
    for number in range(3):
        report = tmp_path / f"r{number}.json"
        env = stream_env(cli_env)
        proc = start_stream(
            env, "--dsn", database, "--rate", "150", "--duration", "10",
            "--progress", "1", "--report", str(report), "--seed-random", str(number),
        )  # fmt: skip
        runs.append((proc, report))
    documents = []
    for proc, report in runs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "connection lost" not in err and "Pipeline" not in err, err
        document = read_report(report)
        assert document["lost"] == {"batches": 0, "events": 0}, err
        assert document["reconnects"] == 0
        assert document["events"]["committed"] > 1000
        documents.append(document)
    after = counts(database)
    for table in before:
        delta = sum(
            d["tables"][table]["insert"] - d["tables"][table]["delete"]
            for d in documents
        )
        assert after[table] - before[table] == delta, table


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_deadlock_and_serialization_failure_replay_the_batch(
    database: str, cli_env: dict[str, str], tmp_path: Path, sqlstate: str
) -> None:
    """A trigger fails the first two consultas inserts with a class 40 error
    (a sequence counts the calls: it survives the rollbacks). Each time the
    whole batch is rolled back and replayed: nothing lost, nothing skipped,
    no reconnect, and no raw psycopg line on stderr."""
    seed(database, domain="hospital")
    _fail_inserts(database, sqlstate, times=2)
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--batch-size", "20", "--max-events", "200", "--report", str(report),
        env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = read_report(report)
    assert document["lost"] == {"batches": 0, "events": 0}
    assert document["retried_batches"] == 2
    assert document["reconnects"] == 0
    assert document["events"]["committed"] == 200
    assert "batch rolled back, replaying it (retry 2/5)" in done.stderr
    assert "connection lost" not in done.stderr
    assert "error ignored terminating" not in done.stderr
    assert_reconciled(before, counts(database, "hospital"), document)


def _fail_inserts(database: str, sqlstate: str, times: int) -> None:
    """The first ``times`` consulta inserts fail with ``sqlstate`` (a trigger):
    a deadlock or serialization failure on demand."""
    with psycopg.connect(database) as conn:
        conn.execute(
            "CREATE SEQUENCE t_failures;"
            "CREATE FUNCTION t_fail() RETURNS trigger AS $$ BEGIN"
            f" IF nextval('t_failures') <= {times} THEN RAISE EXCEPTION 'simulated'"
            f" USING ERRCODE = '{sqlstate}'; END IF; RETURN NEW; END $$"
            " LANGUAGE plpgsql;"
            "CREATE TRIGGER t_fail BEFORE INSERT ON consultas"
            " FOR EACH ROW EXECUTE FUNCTION t_fail()"
        )


def test_a_batch_that_keeps_deadlocking_is_lost_not_fatal(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    _fail_inserts(database, "40P01", times=6)
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--batch-size", "20", "--max-events", "100", "--report", str(report),
        env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = read_report(report)
    assert document["lost"]["batches"] == 1
    assert document["retried_batches"] == 5
    assert document["events"]["committed"] == 100  # lost events are made anew
    assert "rolled back after 5 replays, not counted" in done.stderr
    assert_reconciled(before, counts(database, "hospital"), document)
