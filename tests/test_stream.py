"""Stream configuration, scheduling, ledger arithmetic and parent re-selection."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed import db
from pytest_oltpseed.config import load_settings
from pytest_oltpseed.domains import select
from pytest_oltpseed.stream.events import Mix, domain_events, resolve_mix
from pytest_oltpseed.stream.ledger import Histogram
from pytest_oltpseed.stream.runner import Streamer, StreamOptions
from pytest_oltpseed.stream.schedule import IntervalSchedule, RateSchedule
from tests.conftest import run_cli, tables_in
from tests.stream_helpers import counts, read_report, seed, wait_for


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("bogus=3", "unknown event 'bogus' in --weights: expected one of"),
        ("consulta=x", "invalid --weights='consulta=x' (from command line)"),
        ("consulta=-1", "expected name=N pairs separated by commas"),
        ("=4", "invalid --weights='=4'"),
    ],
)
def test_bad_weights_are_one_line_exit_2(
    cli_env: dict[str, str], weights: str, message: str
) -> None:
    done = run_cli("stream", "--dry-run", "--weights", weights, env=cli_env)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_all_weights_zero_is_a_usage_error(cli_env: dict[str, str]) -> None:
    names = "novo_paciente consulta consulta_status exame exame_resultado internacao"
    zero = ",".join(f"{n}=0" for n in names.split())
    zero += ",alta=0,paciente_update=0,convenio_update=0,consulta_delete=0"
    done = run_cli(
        "stream", "--dry-run", "--domain", "hospital", "--weights",
        zero + ",exame_delete=0", env=cli_env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "every event weight is 0 for --domain hospital" in done.stderr


def test_weights_from_settings_toml_and_flag_layer(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(cli_env["OLTPSEED_CONFIG_DIR"])
    (config / "settings.toml").write_text(
        "[stream.weights]\nconsulta = 7\nsale = 3\n", encoding="utf-8"
    )
    settings = load_settings(env=cli_env)
    assert settings.stream.weights == {"consulta": 7, "sale": 3}
    mix = resolve_mix(
        select("hospital"),
        (settings.stream.weights, settings.stream.weights_source),
        ({"exame": 0}, "--weights"),
    )
    weights = {e.name: e.weight for e in mix.events}
    assert weights["consulta"] == 7  # from the file
    assert "exame" not in weights  # switched off by the flag
    assert "sale" not in weights  # another domain's event: accepted, unused
    done = run_cli("stream", "--dry-run", "--domain", "hospital", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "consulta" in done.stdout and "nothing was written" in done.stdout


def test_bad_stream_settings_name_their_source(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "STREAM_RECONNECT_ATTEMPTS": "0"}
    done = run_cli("stream", "--dry-run", env=env)
    assert done.returncode == 2
    assert "invalid STREAM_RECONNECT_ATTEMPTS='0' (from environment)" in done.stderr


@pytest.mark.parametrize(
    "option", [("--batch-size", "0"), ("--rate", "0"), ("--interval", "-1")]
)
def test_out_of_range_options_exit_2(
    cli_env: dict[str, str], option: tuple[str, str]
) -> None:
    done = run_cli("stream", "--dry-run", *option, env=cli_env)
    assert done.returncode == 2


def test_dry_run_writes_nothing(database: str, cli_env: dict[str, str]) -> None:
    done = run_cli("stream", "--dsn", database, "--dry-run", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert "50 events every 2s +- 400ms until stopped" in done.stdout
    assert tables_in(database) == set()
    flat = run_cli("stream", "--dsn", database, "--dry-run", "--interval", "0",
                   env=cli_env)  # fmt: skip
    assert "50 events every 0s +- 0ms until stopped" in flat.stdout  # as it runs


def test_guardrail_refuses_stream(database: str, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "APP_ENV": "PROD"}
    done = run_cli("stream", "--dsn", database, "--max-events", "5", env=env)
    assert done.returncode == 3
    assert "refusing to stream: APP_ENV=PROD is production-like" in done.stderr
    assert tables_in(database) == set()


def test_unreachable_server_still_writes_the_report(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    done = run_cli(
        "stream", "--dsn", "postgresql://nobody@127.0.0.1:1/x", "--report",
        str(report), env=cli_env,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("oltpseed: error: cannot connect")
    assert "Traceback" not in done.stderr
    document = read_report(report)
    assert document["exit"] == "failed"
    assert document["error"].startswith("cannot connect to PostgreSQL at 127.0.0.1:1/x")
    assert document["events"] == {
        "committed": 0,
        "skipped": 0,
        "by_type": {},
        "skipped_by_type": {},
    }


@pytest.mark.parametrize("where", ["/proc/r.json", "directory", "fifo"])
def test_unwritable_report_is_refused_before_anything_is_written(
    database: str, cli_env: dict[str, str], tmp_path: Path, where: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    target = work / "out"
    if where == "directory":
        target.mkdir()
    elif where == "fifo":
        os.mkfifo(target)
    report = where if where.startswith("/") else str(target)
    before = set(work.iterdir())
    done = run_cli(
        "stream", "--dsn", database, "--max-events", "5", "--report", report,
        env=cli_env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"oltpseed: error: cannot write --report {report}: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert tables_in(database) == set()  # nothing streamed, nothing installed
    assert set(work.iterdir()) == before  # no stray temporary file
    assert not list(Path("/").glob(".out.*.tmp"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_read_only_directory_is_refused_for_a_non_root_user(tmp_path: Path) -> None:
    """As root every directory is writable; the check must hold for the user
    who cannot write there (run as ``nobody``)."""
    folder = Path(tempfile.mkdtemp(prefix="oltpseed-ro-"))
    try:
        folder.chmod(0o555)
        probe = (
            "import sys; from pathlib import Path; "
            "from pytest_oltpseed.stream.ledger import check_outputs; "
            "from pytest_oltpseed.errors import UsageError\n"
            "try: check_outputs({'--report': Path(sys.argv[1])})\n"
            "except UsageError as e: print(e); sys.exit(2)"
        )
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-c", probe, str(folder / "r.json")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert f"{folder} is not writable" in done.stdout
        assert list(folder.iterdir()) == []
    finally:
        folder.rmdir()


def test_pause_and_resume_commands_say_what_they_did(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "STREAM_PAUSE_FILE": str(tmp_path / "p" / ".paused")}
    assert "paused:" in run_cli("pause", env=env).stdout
    assert "already paused" in run_cli("pause", env=env).stdout
    assert (tmp_path / "p" / ".paused").exists()
    assert "resumed: removed" in run_cli("resume", env=env).stdout
    assert "not paused" in run_cli("resume", env=env).stdout


def test_histogram_percentiles_within_one_percent() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(2, 1) for _ in range(20_000)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    ordered = sorted(values)
    for p in (50, 95, 99):
        exact = ordered[int(len(ordered) * p / 100) - 1]
        assert histogram.percentile(p) == pytest.approx(exact, rel=0.011)
    assert histogram.max == max(values)
    assert Histogram().percentile(99) == 0.0


def test_rate_schedule_is_fixed_and_batches_close_when_idle() -> None:
    schedule = RateSchedule(rate=100, size=50, now=10.0)
    dues = []
    for _ in range(5):
        dues.append(schedule.peek(10.0))
        schedule.take(10.0)
    assert dues == pytest.approx([10.0, 10.01, 10.02, 10.03, 10.04])
    assert schedule.batch_over(50, 0.0)  # full
    assert schedule.batch_over(3, 0.2)  # waiting longer than the hold: commit
    assert not schedule.batch_over(3, 0.005)
    assert not schedule.batch_over(0, 5.0)
    schedule.rebase(20.0)
    assert schedule.peek(20.0) == 20.0


def test_interval_schedule_cycles_and_restarts_when_late() -> None:
    schedule = IntervalSchedule(2.0, 0.0, 3, random.Random(1), now=0.0)
    for _ in range(3):
        assert schedule.peek(0.0) == 0.0
        schedule.take(0.0)
    assert schedule.peek(0.5) == 2.0  # the next cycle, two seconds on
    assert schedule.batch_over(3, 1.5)
    schedule.take(7.0)  # that cycle started five seconds late
    schedule.take(7.0)
    schedule.take(7.0)
    assert schedule.peek(7.1) == 9.0  # counted from the late start: no burst


def test_interval_zero_is_flat_out_whatever_the_jitter() -> None:
    """``--interval 0`` runs flat out with the default jitter (400 ms) too,
    and a jitter wider than the interval keeps the mean pace at the interval."""
    flat = IntervalSchedule(0.0, 0.4, 2, random.Random(3), now=0.0)
    for _ in range(20):  # cycle after cycle, no time passing: all due now
        assert flat.peek(0.0) == 0.0
        flat.take(0.0)
    wide = IntervalSchedule(0.2, 0.4, 1, random.Random(5), now=0.0)
    starts = []
    for _ in range(2000):
        starts.append(wide.peek(0.0))
        wide.take(starts[-1])
    mean = (starts[-1] - starts[0]) / (len(starts) - 1)
    assert 0.19 < mean < 0.21, mean


def test_deleted_parent_is_reselected_not_an_error(
    database: str, tmp_path: Path
) -> None:
    """A patient in the stream's cache is deleted by someone else: the next
    appointment for it hits the FK, and the stream picks another patient."""
    seed(database, domain="hospital")
    with psycopg.connect(database) as conn:  # one patient left to pick
        conn.execute(
            "DELETE FROM pacientes_convenios; DELETE FROM consultas; "
            "DELETE FROM exames; DELETE FROM internacoes; "
            "DELETE FROM pacientes WHERE id > (SELECT min(id) FROM pacientes)"
        )
    options = StreamOptions(
        interval=0.3, jitter_ms=0, batch_size=1, max_events=6,
        pause_file=tmp_path / ".paused", progress_s=0,
    )  # fmt: skip
    streamer = _consulta_streamer(database, options)
    worker = threading.Thread(target=streamer.run)
    worker.start()
    wait_for(lambda: streamer.ledger.committed >= 1, what="a first consulta")
    options.pause_file.touch()
    time.sleep(0.8)  # the stream parks between cycles
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM consultas; DELETE FROM pacientes")
        conn.execute(
            "INSERT INTO pacientes (nome, nascimento, cpf, data_cadastro) "
            "VALUES ('Paciente Novo', '1990-01-01', '000.000.001-91', '2025-01-01')"
        )
    options.pause_file.unlink()
    worker.join(timeout=60)
    assert not worker.is_alive()
    document = streamer.report()
    assert document["events"]["skipped"] == 0
    assert document["events"]["committed"] == 6
    with psycopg.connect(database) as conn:
        patients = conn.execute(
            "SELECT DISTINCT p.nome FROM consultas c JOIN pacientes p "
            "ON p.id = c.paciente_id"
        ).fetchall()
    assert patients == [("Paciente Novo",)]


def _consulta_streamer(database: str, options: StreamOptions) -> Streamer:
    """An in-process stream of the hospital's ``consulta`` event only."""
    settings = load_settings(dsn=database, env={})
    hospital = select("hospital")
    consulta = Mix(tuple(e for e in domain_events(hospital[0]) if e.name == "consulta"))
    return Streamer(lambda: db.connect(database, settings), hospital, consulta, options)


def test_periodic_recount_never_holds_up_a_batch(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The minutely COUNT(*) of every table (for the printed totals) used to
    run inside the batch loop: on STRESS it stalled a batch for a quarter of
    a second. It now runs on its own connection: a table it must count is
    locked by someone else, and appointments still commit meanwhile."""
    import pytest_oltpseed.stream.runner as streaming

    monkeypatch.setattr(streaming, "RESYNC_S", 0.3)
    seed(database, domain="hospital")
    options = StreamOptions(
        interval=0.05, jitter_ms=0, batch_size=5, duration=6,
        pause_file=tmp_path / ".paused", progress_s=0,
    )  # fmt: skip
    streamer = _consulta_streamer(database, options)
    worker = threading.Thread(target=streamer.run)
    worker.start()
    wait_for(lambda: streamer.ledger.committed >= 10, what="first commits")
    with psycopg.connect(database) as blocker:
        blocker.execute("LOCK TABLE internacoes IN ACCESS EXCLUSIVE MODE")
        time.sleep(1.0)  # a recount fell due and is waiting for the lock
        before = streamer.ledger.committed
        time.sleep(1.5)
        during = streamer.ledger.committed - before
        blocker.rollback()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert during >= 20, during  # ~100 events/s; the old loop stalled: 0
    # The totals still follow the table (a batch committed while it was
    # counted may be counted twice: they are for display).
    actual = counts(database, "hospital")["consultas"]
    assert abs(streamer.totals["consultas"] - actual) <= options.batch_size


def test_pause_key_without_pg_control_system(database: str) -> None:
    """A role that may not call pg_control_system() (as on some managed
    services) still gets a sentinel: host, port and database name."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from pytest_oltpseed.stream.pausing import database_key

    role = f"nocontrol_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
        own = database_key(admin)
    try:
        params = conninfo_to_dict(database)
        with psycopg.connect(make_conninfo(**{**params, "user": role})) as conn:
            key = database_key(conn)
        assert own.split("-")[0].isdigit() and key != own
        assert key.endswith(f"-{params['dbname']}")
    finally:
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_sale_items_prefer_products_on_the_store_shelf(database: str) -> None:
    """With the stream's stock tally a sale item prefers a product its store
    holds: a product it lacks costs a restock (a distribution, maybe an
    entry), which on STRESS's 50,000-product catalogue was nearly every item."""
    from types import SimpleNamespace

    from pytest_oltpseed.data.factory import Ref
    from pytest_oltpseed.domains.retail.factories import SaleItem
    from pytest_oltpseed.stream.events import StreamContext

    seed(database, domain="retail")
    with psycopg.connect(database) as conn, psycopg.connect(database) as reserve:
        reserve.autocommit = True
        ctx = StreamContext(conn, reserve_conn=reserve, seed=3, pool_seed=0,
                            floor=datetime(2026, 1, 1))  # fmt: skip
        sample = ctx.cache("products")
        sample.load(ctx)
        store = int(conn.execute("SELECT min(id) FROM stores").fetchone()[0])  # type: ignore[index]
        stocked = {int(p["id"]) for p in sample.rows[::2]}  # half the sample
        assert ctx.state is not None
        ctx.state["stock"] = {("store", store, p): 10 for p in stocked}
        sale = SimpleNamespace(sale_id=Ref("sales", {"id": 0, "store_id": store}))
        product = SaleItem._meta.declarations["product_id"]
        picks = [int(product.resolve(ctx, sale, True).id) for _ in range(400)]
        conn.rollback()
    on_shelf = sum(p in stocked for p in picks) / len(picks)
    assert on_shelf >= 0.95, on_shelf  # a plain random pick: about 0.5


# test_decoding's line for an insert into a table (id, then an FK column)
INSERTED = re.compile(
    r"table public\.(\w+): INSERT: id\[bigint\]:(\d+) \w+\[bigint\]:(\d+)"
)
HEADERS = {  # a retail header and its items' table
    "sales": "sale_items",
    "internal_distributions": "internal_distribution_items",
    "product_entries": "product_entry_items",
}


def test_a_header_and_its_items_are_one_statement(database: str) -> None:
    """A sale, a distribution, an entry (and the restocks a sale item needs):
    the header and its items in one INSERT, counted and keyed table by table,
    the header before its items in the WAL, and the counts the database's.
    Two statements each before: the most frequent retail event's round trip
    in psycopg and in the server."""
    from pytest_oltpseed.data.factory import changed_keys
    from pytest_oltpseed.domains.retail import events as retail
    from pytest_oltpseed.stream.events import StreamContext

    seed(database, domain="retail")
    before = counts(database, "retail")
    slot = f"order_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,)
        )
    try:
        with psycopg.connect(database) as conn, psycopg.connect(database) as other:
            other.autocommit = True
            ctx = StreamContext(conn, reserve_conn=other, seed=5, pool_seed=0,
                                floor=datetime(2026, 1, 1))  # fmt: skip
            ctx.keyed, ctx.journal = [], []
            for event in (retail.sale, retail.distribution, retail.stock_entry) * 30:
                event(ctx)
            assert ctx.ledger is not None
            journal, ledger = ctx.journal, list(ctx.ledger)
            keys = changed_keys(ctx.ledger, ctx.keyed)
            conn.commit()
        with psycopg.connect(database, autocommit=True) as admin:
            decoded = [r[0] for r in admin.execute(
                "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)",
                (slot,),
            )]  # fmt: skip
            wrong = admin.execute(
                "SELECT count(*) FROM sales s WHERE total <> (SELECT sum(subtotal) "
                "FROM sale_items i WHERE i.sale_id = s.id)"
            ).fetchone()
    finally:
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    written = [s.counts for s in journal]
    assert len(written) >= 90
    assert all(
        c == ((c[0][0], "insert"), (HEADERS[c[0][0]], "insert")) for c in written
    )
    assert wrong == (0,)
    after = counts(database, "retail")
    for table in (*HEADERS, *HEADERS.values()):
        assert (
            sum(n for t, _, n in ledger if t == table) == after[table] - before[table]
        )
        assert (
            sum(len(k) for t, _, k in keys if t == table)
            == after[table] - before[table]
        )
    seen: set[str] = set()  # "table:id" of the headers decoded so far
    items = 0
    for line in decoded:
        found = INSERTED.match(line)
        if found and found[1] in HEADERS:
            seen.add(f"{found[1]}:{found[2]}")
        elif found and found[1] in HEADERS.values():
            header = next(h for h, i in HEADERS.items() if i == found[1])
            assert f"{header}:{found[3]}" in seen, line  # its header came first
            items += 1
    assert items == sum(after[i] - before[i] for i in HEADERS.values())
