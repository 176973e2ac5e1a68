"""``stream --clients N`` and ``--shard i/K`` against a real server: the merged
ledger equals the database's row-count changes and, key by key, what a logical
slot over every table decoded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pytest_oltpseed.config import load_settings
from pytest_oltpseed.errors import ConfigError
from pytest_oltpseed.server.embedded import ephemeral_server
from pytest_oltpseed.stream.merging import merge_changes, merge_reports
from pytest_oltpseed.stream.runner import StreamOptions, parse_shard, stream_seed
from pytest_oltpseed.stream.workers import client_options
from tests.conftest import run_cli, scratch_database
from tests.stream_helpers import (
    assert_reconciled,
    committed_in,
    counts,
    read_report,
    restart_server,
    seed,
    start_stream,
    stream_env,
    wait_for,
)


def _verify(database: str, env: dict[str, str], report: Path, changes: Path) -> None:
    verified = run_cli(
        "cdc", "verify", "--dsn", database, "--report", str(report),
        "--changes", str(changes), "--json", env=env,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"]


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _kill_one_backend(dsn: str, application_name: str) -> bool:
    """Terminate one client's batch connection, caught inside a transaction
    (the reservation connections are autocommit: never in one for long)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid() "
            "AND xact_start IS NOT NULL LIMIT 1",
            (application_name,),
        ).fetchone()
    return bool(row and row[0])


def _four_clients_then_a_kill(
    database: str, env: dict[str, str], tmp_path: Path, events: int
) -> tuple[subprocess.Popen[str], Path, Path, dict[str, int]]:
    """Seed, make a slot, start 4 clients and kill one client's backend while
    its batch is open; the stream, its report, changes file and counts before."""
    seed(database)
    assert run_cli("cdc", "start", "--dsn", database, env=env).returncode == 0
    before = counts(database)
    report, changes = tmp_path / "r.json", tmp_path / "c.jsonl"
    proc = start_stream(
        env, "--dsn", database, "--clients", "4", "--rate", "800",
        "--max-events", str(events), "--batch-size", "25", "--progress", "0.3",
        "--report", str(report), "--changes", str(changes),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 300, what="first commits")
    name = env["PG_APPLICATION_NAME"]
    wait_for(lambda: _kill_one_backend(database, name), what="a batch in flight")
    return proc, report, changes, before


def _matches_database_and_slot(
    database: str,
    env: dict[str, str],
    paths: tuple[Path, Path],
    before: dict[str, int],
    document: dict[str, Any],
) -> list[dict[str, object]]:
    """Report == COUNT(*) deltas == changes file == what the slot decoded."""
    report, changes = paths
    assert_reconciled(before, counts(database), document)
    lines = _lines(changes)
    assert (
        len(lines)
        == document["changes"]["lines"]
        == sum(sum(ops.values()) for ops in document["tables"].values())
    )
    _verify(database, env, report, changes)
    return lines


def test_four_clients_with_a_killed_backend_match_database_and_slot(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = stream_env(cli_env)
    proc, report, changes, before = _four_clients_then_a_kill(
        database, env, tmp_path, 2400
    )
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["exit"] == "completed" and document["clients"] == 4
    assert document["reconnects"] >= 1
    assert len(document["runs"]) == 4 and len(document["parts"]) == 4
    assert document["events"]["committed"] + document["events"]["skipped"] == 2400
    lines = _matches_database_and_slot(
        database, env, (report, changes), before, document
    )
    stamps = [int(str(line["at"])) for line in lines]
    assert stamps == sorted(stamps)  # merged in commit order


def test_four_clients_ride_out_a_killed_backend_and_a_server_restart(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The acceptance run: one client's backend killed, then the server itself
    stopped and started mid-run (its own server: the session's stays up). Every
    client reconnects with backoff and goes on; the merged ledger equals the
    COUNT(*) deltas and, key by key, what a slot made before the run decoded
    (slots survive a restart)."""
    with ephemeral_server() as server, scratch_database(server) as database:
        env = stream_env(cli_env)
        proc, report, changes, before = _four_clients_then_a_kill(
            database, env, tmp_path, 3200
        )
        wait_for(lambda: committed_in(report) > 900, what="commits after the kill")
        assert server.datadir is not None
        restart_server(server.datadir, down_s=2.0)
        _out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        document = read_report(report)
        assert document["exit"] == "completed", err
        assert {part["exit"] for part in document["parts"]} == {"completed"}
        # every client reconnects after the restart (a client still backing
        # off after the kill rides out both in one reconnect)
        assert document["reconnects"] >= 4
        assert "reconnecting in" in err and "Traceback" not in err
        events = document["events"]
        assert events["committed"] + events["skipped"] == 3200
        _matches_database_and_slot(database, env, (report, changes), before, document)


def test_sigterm_stops_every_client_with_a_complete_report(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    env = stream_env(cli_env)
    before = counts(database)
    report, changes = tmp_path / "r.json", tmp_path / "c.jsonl"
    proc = start_stream(
        env, "--dsn", database, "--clients", "4", "--rate", "400",
        "--batch-size", "20", "--report", str(report), "--changes", str(changes),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 200, what="first commits")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    document = read_report(report)
    assert document["exit"] == "stopped" and len(document["parts"]) == 4
    assert {part["exit"] for part in document["parts"]} == {"stopped"}
    assert_reconciled(before, counts(database), document)
    assert len(_lines(changes)) == sum(
        sum(ops.values()) for ops in document["tables"].values()
    )
    assert not list(tmp_path.glob(".oltpseed-clients-*"))  # parts cleaned up


def test_a_killed_client_stops_the_run_with_exit_1(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    env = stream_env(cli_env)
    report = tmp_path / "r.json"
    proc = start_stream(
        env, "--dsn", database, "--domain", "hospital", "--clients", "2",
        "--rate", "300", "--batch-size", "10", "--report", str(report),
    )  # fmt: skip
    wait_for(lambda: committed_in(report) > 50, what="first commits")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "was killed (SIGKILL)" in err and "Traceback" not in err
    document = read_report(report)
    assert document["exit"] == "client_killed"
    assert "killed" in document["error"]
    survivor = [p for p in document["parts"] if p["exit"] == "stopped"]
    assert len(survivor) == 1 and survivor[0]["committed"] > 0


def test_two_shards_at_once_never_collide_and_their_merge_verifies(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    env = stream_env(cli_env)
    assert run_cli("cdc", "start", "--dsn", database, env=env).returncode == 0
    before = counts(database)
    procs = [start_stream(env, *_shard_args(database, tmp_path, i)) for i in (0, 1)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "UniqueViolation" not in err
    parts = [read_report(tmp_path / f"r{i}.json") for i in range(2)]
    assert [p["shard"] for p in parts] == ["0/2", "1/2"]
    assert parts[0]["run_id"].endswith("-s0of2")
    assert all(p["events"]["skipped"] == 0 for p in parts)
    _merge_two_shards(tmp_path, env)
    document = read_report(tmp_path / "all.json")
    assert document["events"]["committed"] == 1600
    assert_reconciled(before, counts(database), document)
    _verify(database, env, tmp_path / "all.json", tmp_path / "all.jsonl")


def _merge_two_shards(tmp_path: Path, env: dict[str, str]) -> None:
    """``report merge`` of shards 0 and 1 into all.json and all.jsonl."""
    merged = run_cli(
        "report", "merge", str(tmp_path / "r0.json"), str(tmp_path / "r1.json"),
        "-o", str(tmp_path / "all.json"),
        "--changes", str(tmp_path / "c0.jsonl"),
        "--changes", str(tmp_path / "c1.jsonl"),
        "--changes-output", str(tmp_path / "all.jsonl"), env=env,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr


def test_verify_breaks_merged_shards_down_and_names_the_one_that_differs(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database)
    env = stream_env(cli_env)
    assert run_cli("cdc", "start", "--dsn", database, env=env).returncode == 0
    procs = [
        start_stream(env, *_shard_args(database, tmp_path, i, events=300))
        for i in (0, 1)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    _merge_two_shards(tmp_path, env)
    parts = [read_report(tmp_path / f"r{i}.json") for i in range(2)]
    lines = _lines(tmp_path / "all.jsonl")
    per_shard = [
        [x for x in lines if str(x["run"]) == part["run_id"]] for part in parts
    ]

    def verify(*extra: str) -> tuple[int, dict[str, Any]]:
        done = run_cli(
            "cdc", "verify", "--dsn", database, "--report",
            str(tmp_path / "all.json"), "--json", *extra, env=env,
        )  # fmt: skip
        assert "Traceback" not in done.stderr
        return done.returncode, json.loads(done.stdout)

    code, clean = verify("--changes", str(tmp_path / "all.jsonl"), "--keep")
    assert code == 0 and clean["ok"]
    assert [s["shard"] for s in clean["shards"]] == ["0/2", "1/2"]
    for shard, part, mine in zip(clean["shards"], parts, per_shard, strict=True):
        assert shard["ok"] and shard["runs"] == 1
        assert shard["batches_reported"] == shard["batches_captured"]
        assert shard["batches_reported"] == part["batches"]
        assert shard["expected"] == shard["captured"] == len(mine) > 0
        assert shard["missing"] == shard["extra"] == 0
    # the report alone: each shard's expected changes from the merged parts
    code, counted = verify("--keep")
    assert code == 0 and counted["shards"] == clean["shards"]
    # one change of shard 1 left out of the file: the WAL has it, unexpected
    dropped = per_shard[1][len(per_shard[1]) // 2]
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text(
        "".join(json.dumps(x) + "\n" for x in lines if x is not dropped)
    )
    code, found = verify("--changes", str(tampered), "--keep")
    assert code == 1 and not found["ok"]
    first, second = found["shards"]
    assert first["ok"] and first["extra"] == first["missing"] == 0
    assert not second["ok"] and second["extra"] == 1 and second["missing"] == 0
    assert second["expected"] == len(per_shard[1]) - 1 == second["captured"] - 1
    text = run_cli(
        "cdc", "verify", "--dsn", database, "--report", str(tmp_path / "all.json"),
        env=env,
    )  # fmt: skip
    assert "per shard" in text.stdout and "1/2" in text.stdout, text.stderr


def _shard_args(database: str, tmp_path: Path, i: int, events: int = 800) -> list[str]:
    return [
        "--dsn", database, "--shard", f"{i}/2", "--interval", "0",
        "--max-events", str(events), "--batch-size", "25", "--seed-random", "7",
        "--report", str(tmp_path / f"r{i}.json"),
        "--changes", str(tmp_path / f"c{i}.jsonl"),
    ]  # fmt: skip


def test_rate_and_budget_split_add_up_to_the_totals() -> None:
    options = StreamOptions(rate=1000.0, max_events=1003, seed=5)
    shares = [client_options(options, 4, k) for k in range(4)]
    assert sum(s.max_events or 0 for s in shares) == 1003
    assert sum(s.rate or 0 for s in shares) == pytest.approx(1000.0)
    assert len({s.seed for s in shares}) == 4
    assert stream_seed(5, None, 0) == 5  # a one-client run keeps its seed
    assert stream_seed(5, (0, 2), 0) != stream_seed(5, (1, 2), 0)


def test_merge_orders_batches_by_commit_time_and_sums_reports(tmp_path: Path) -> None:
    def line(run: str, batch: int, at: int, key: int) -> str:
        return json.dumps(
            {"run": run, "batch": batch, "xid": batch, "at": at, "table": "t",
             "op": "update", "key": {"id": key}}
        )  # fmt: skip

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(line("a", 1, 10, 1) + "\n" + line("a", 1, 10, 2) + "\n"
                 + line("a", 2, 30, 1) + "\n")  # fmt: skip
    b.write_text(line("b", 1, 20, 1) + "\n")
    out = tmp_path / "m.jsonl"
    assert merge_changes([a, b], out) == 4
    order = [(x["run"], x["batch"]) for x in _lines(out)]
    assert order == [("a", 1), ("a", 1), ("b", 1), ("a", 2)]
    part = {"run_id": "a", "batches": 2, "tables": {"t": {"insert": 1}},
            "events": {"committed": 3, "skipped": 1}, "exit": "completed"}  # fmt: skip
    other = {**part, "run_id": "b", "batches": 1, "exit": "stopped"}
    merged = merge_reports([part, other], "m")
    assert merged["runs"] == {"a": 2, "b": 1} and merged["batches"] == 3
    assert merged["tables"]["t"]["insert"] == 2
    assert merged["events"]["committed"] == 6 and merged["exit"] == "stopped"


def test_bad_shard_is_one_line_and_exit_2(cli_env: dict[str, str]) -> None:
    with pytest.raises(Exception, match="expected i/K"):
        parse_shard("2/2")
    done = run_cli("stream", "--shard", "x", "--dry-run", env=cli_env)
    assert done.returncode == 2
    assert "--shard 'x'" in done.stderr and "Traceback" not in done.stderr


def _connections(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_long_row_lock_is_waited_out_by_replays_not_a_lost_batch(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Concurrent streams fail a row-lock wait after a short lock_timeout (a
    deadlock costs every client deadlock_timeout, 1 s) and replay the batch;
    a lock held for long by someone else is waited out, nothing is lost."""
    seed(database, domain="hospital")
    env = stream_env(cli_env)
    before = counts(database, "hospital")
    report = tmp_path / "r.json"
    others = ",".join(
        f"{name}=0"
        for name in ("novo_paciente", "consulta", "consulta_status", "exame",
                     "exame_resultado", "internacao", "alta", "paciente_update",
                     "consulta_delete", "exame_delete")
    )  # fmt: skip
    with psycopg.connect(database) as holder:
        holder.execute("SELECT id FROM convenios FOR UPDATE")
        proc = start_stream(
            env, "--dsn", database, "--domain", "hospital", "--shard", "0/1",
            "--weights", f"{others},convenio_update=1", "--interval", "0",
            "--batch-size", "5", "--max-events", "20", "--progress", "0.2",
            "--report", str(report),
        )  # fmt: skip
        name = env["PG_APPLICATION_NAME"]
        wait_for(lambda: _connections(database, name) >= 2, what="the stream")
        time.sleep(1.5)  # its batches meet the lock: time out, replay, again
        assert proc.poll() is None  # still replaying while the lock is held
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    document = read_report(report)
    assert document["retried_batches"] >= 1, err
    assert document["lost"] == {"batches": 0, "events": 0}
    assert document["events"]["committed"] == 20
    assert sum(ops["update"] for ops in document["tables"].values()) == 20
    assert_reconciled(before, counts(database, "hospital"), document)
    assert "row lock held over" in err and "on convenios" in err  # the hot table


def test_rate_split_over_four_clients_holds_the_total(
    database: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    seed(database, domain="hospital")
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--clients", "4",
        "--rate", "1000", "--duration", "6", "--batch-size", "25",
        "--report", str(report), env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = read_report(report)
    assert {part["exit"] for part in document["parts"]} == {"completed"}
    assert abs(document["events_per_s"] - 1000) / 1000 < 0.02, document["parts"]


def test_dry_run_names_the_clients_and_shard(cli_env: dict[str, str]) -> None:
    done = run_cli(
        "stream", "--clients", "3", "--shard", "1/2", "--dry-run", env=cli_env
    )
    assert done.returncode == 0, done.stderr
    assert "shard 1/2, 3 client(s)" in done.stdout


def test_clients_come_from_settings_toml_and_the_environment(tmp_path: Path) -> None:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / ".env").write_text("")
    (directory / "settings.toml").write_text("[stream]\nclients = 3\n")
    assert load_settings(config_dir=directory, env={}).stream.clients == 3
    env = {"STREAM_CLIENTS": "5"}
    settings = load_settings(config_dir=directory, env=env)
    assert settings.stream.clients == 5  # the environment beats the toml
    options = StreamOptions.from_settings(settings.stream)
    assert options.clients == 5
    assert StreamOptions.from_settings(settings.stream, clients=2).clients == 2
    with pytest.raises(ConfigError, match="STREAM_CLIENTS"):
        load_settings(config_dir=directory, env={"STREAM_CLIENTS": "0"})


def test_clients_that_cannot_start_still_leave_a_report(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", "postgresql://nobody@127.0.0.1:1/x", "--clients", "2",
        "--max-events", "10", "--report", str(report), env=cli_env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "cannot connect" in done.stderr and "Traceback" not in done.stderr
    document = read_report(report)
    assert document["exit"] == "failed" and document["clients"] == 2
    assert document["events"]["committed"] == 0


_HOT_ONLY = (
    "novo_paciente=0,consulta=5,consulta_status=0,exame=0,exame_resultado=0,"
    "internacao=0,alta=0,paciente_update=0,consulta_delete=0,exame_delete=0,"
    "convenio_update=5"
)


def _late_first_at(lines: list[dict[str, object]]) -> list[bool]:
    """Per batch: whether every hot update (convenio_update) comes after the
    batch's other changes."""
    batches: dict[tuple[object, object], list[bool]] = {}
    for line in lines:
        hot = line["table"] in ("convenios", "pacientes_convenios")
        batches.setdefault((line["run"], line["batch"]), []).append(hot)
    return [flags == sorted(flags) for flags in batches.values()]


@pytest.mark.parametrize("shard", [True, False])
def test_concurrent_streams_run_hot_updates_last_in_their_batch(
    database: str, cli_env: dict[str, str], tmp_path: Path, shard: bool
) -> None:
    """A hot row (a plan's coverage) is locked for the COMMIT, not the batch:
    concurrent streams run ``late`` events last; a lone stream keeps its draw
    order (so the check below is seen to fail without the deferral)."""
    seed(database, domain="hospital")
    changes = tmp_path / "c.jsonl"
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--interval", "0",
        "--batch-size", "20", "--max-events", "400", "--seed-random", "3",
        "--weights", _HOT_ONLY, "--changes", str(changes),
        *(["--shard", "0/1"] if shard else []), env=stream_env(cli_env),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ordered = _late_first_at(_lines(changes))
    assert len(ordered) == 20
    assert all(ordered) if shard else not all(ordered)


def test_stream_ids_come_in_growing_blocks(database: str) -> None:
    """Ids are reserved on a second connection, a round trip each block: a
    busy table (retail's items) took one every 64 rows; blocks now double up
    to 2,048, and never hand out an id twice."""
    from pytest_oltpseed.data.factory import Context
    from pytest_oltpseed.domains import schema, select

    with psycopg.connect(database) as conn:
        schema.install(conn, select("retail"))
        conn.commit()
        ctx = Context(conn, allocate_ids=True)
        asked: list[object] = []
        execute = conn.execute

        def counted(query: Any, params: Any = None, **kw: Any) -> Any:
            asked.append(params)
            return execute(query, params, **kw)

        conn.execute = counted  # type: ignore[method-assign]
        ids = [ctx._next_id("sale_items") for _ in range(6000)]
    assert len(set(ids)) == 6000
    assert [p[1] for p in asked] == [64, 128, 256, 512, 1024, 2048, 2048]  # type: ignore[index]


def _warm_then_wait(starting: Any, started: Any, index: int, warm_s: float) -> None:
    """A stand-in client: warm for ``warm_s`` (die instead when negative),
    then wait for the others and note when its clock started."""
    time.sleep(abs(warm_s))
    if warm_s < 0:
        os._exit(3)
    began = time.time()
    starting.wait(lambda: time.time() - began > 2.0)  # "stopped" after 2 s
    started[index] = time.time()


def test_clients_start_their_clocks_together() -> None:
    """A client warm early waits for the slowest (so none streams alone on a
    machine busy warming the others); one that dies while warming is not
    waited for; a stop ends the wait. Before, each began as it was ready."""
    import multiprocessing

    from pytest_oltpseed.stream.workers import Starting

    context = multiprocessing.get_context("fork")
    for warm, released in (((0.0, 0.6, 0.3, -0.2), True), ((0.0, 0.1), False)):
        starting, started = Starting(context), context.Array("d", len(warm))
        began = time.time()
        clients = [
            context.Process(target=_warm_then_wait, args=(starting, started, i, w))
            for i, w in enumerate(warm)
        ]
        for client in clients:
            client.start()
        while any(c.is_alive() for c in clients):
            if released:
                starting.release(sum(c.is_alive() for c in clients))
            time.sleep(0.01)
        at = [started[i] - began for i, w in enumerate(warm) if w >= 0]
        if released:  # together, once the slowest was warm
            assert min(at) >= 0.6 and max(at) - min(at) < 0.15, at
        else:  # never released: each ends its wait when stopped
            assert min(at) >= 2.0, at
        assert [c.exitcode for c in clients] == [0 if w >= 0 else 3 for w in warm]
