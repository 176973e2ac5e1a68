"""What a new user meets from the outside (issue 11): one line, the right exit
code, whole output off a terminal, and no gate that passes on nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed.config import load_settings
from pytest_oltpseed.data.factory import bind, factory_for
from pytest_oltpseed.domains import schema, select
from tests.conftest import as_user, run_cli


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_check_fails_on_an_empty_database(
    database: str, cli_env: dict[str, str]
) -> None:
    result = run_cli("check", "--dsn", database, env=cli_env)
    assert result.returncode == 1, result.stdout
    assert "nothing to check" in _one_line(result.stderr)
    assert "rules hold" not in result.stdout
    as_json = run_cli("check", "--json", "--dsn", database, env=cli_env)
    assert as_json.returncode == 1 and '"ok": true' not in as_json.stdout


def test_check_fails_on_installed_but_empty_tables(
    database: str, cli_env: dict[str, str]
) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))  # lookups only: 2 convenios
    result = run_cli("check", "--domain", "hospital", "--dsn", database, env=cli_env)
    assert result.returncode == 1, result.stdout
    line = _one_line(result.stderr)
    assert "hospital" in line and "empty" in line


def test_check_all_skips_an_absent_domain_but_checks_the_other(
    database: str, cli_env: dict[str, str]
) -> None:
    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))
        with bind(conn, seed=5):
            for table in select("hospital")[0].tables:
                factory_for(table).create_batch(3)
        conn.commit()
    result = run_cli("check", "--dsn", database, env=cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "retail: not installed" in _one_line(result.stderr)
    named = run_cli("check", "--domain", "retail", "--dsn", database, env=cli_env)
    assert named.returncode == 1
    assert "retail tables are not installed" in _one_line(named.stderr)


@pytest.mark.parametrize(
    "host", ["db..example.com", "a" * 64 + ".example.com", "x" * 70]
)
def test_unresolvable_host_names_are_one_line(
    host: str, cli_env: dict[str, str]
) -> None:
    dsn = run_cli(
        "counts", "--dsn", f"postgresql://postgres@{host}:5432/x", env=cli_env
    )
    assert dsn.returncode == 2
    assert "valid host" in _one_line(dsn.stderr)
    variable = run_cli("counts", env={**cli_env, "PG_HOST": host})
    assert variable.returncode == 2
    assert "PG_HOST" in _one_line(variable.stderr)


def test_oltpseed_home_on_a_file_is_one_line(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    afile = tmp_path / "home"
    afile.write_text("not a directory")
    for args in (["counts"], ["server", "status"], ["server", "start"]):
        result = run_cli(*args, env={**cli_env, "OLTPSEED_HOME": str(afile)})
        assert result.returncode == 2, result.stderr
        assert "not a directory" in _one_line(result.stderr)
    below = run_cli(
        "server", "start", env={**cli_env, "OLTPSEED_HOME": str(afile / "x")}
    )
    assert below.returncode == 2
    assert "OLTPSEED_HOME" in _one_line(below.stderr)


def test_unreadable_config_directory_as_a_user(cli_env: dict[str, str]) -> None:
    """Root reads anything: the command runs as ``nobody`` when we are root."""
    base = Path(tempfile.mkdtemp(prefix="oltpseed-cfg-"))
    try:
        base.chmod(0o755)
        config = base / "config"
        config.mkdir()
        (config / ".env").write_text("SEED_SIZE=SMALL\n")
        config.chmod(0)
        env = {k: v for k, v in cli_env.items() if k != "OLTPSEED_CONFIG_DIR"}
        result = run_cli(
            "seed", "--dry-run", env={**env, "LOG_DIR": str(base / "logs")},
            cwd=base, timeout=60, user=as_user(),
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        line = _one_line(result.stderr)
        assert "cannot read config" in line and "Permission denied" in line
    finally:
        (base / "config").chmod(0o700)
        shutil.rmtree(base)


def test_malformed_dotenv_names_file_and_line(cli_env: dict[str, str]) -> None:
    config = Path(cli_env["OLTPSEED_CONFIG_DIR"])
    (config / ".env").write_text("SEED_SIZE=SMALL\nPG_PASSWORD s3cret\nA=1\n")
    result = run_cli("seed", "--dry-run", env=cli_env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"{config / '.env'} line 2" in line
    assert "s3cret" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["stream", "--batch-size", "0"],
        ["stream", "--rate", "-5"],
        ["stream", "--interval", "-1"],
        ["seed", "--seed-random", "-1"],
        ["seed", "--force", "true"],
        ["counts", "--no-such-option"],
    ],
)
def test_usage_errors_are_one_line(args: list[str], cli_env: dict[str, str]) -> None:
    result = run_cli(*args, env=cli_env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith("oltpseed: error: ") and "╭" not in line
    assert f"oltpseed {args[0]} -h" in line


def test_flags_show_as_plain_flags(cli_env: dict[str, str]) -> None:
    result = run_cli("seed", "-h", env={**cli_env, "COLUMNS": "200"})
    assert result.returncode == 0
    for flag in ("--force", "--dry-run"):
        (line,) = [row for row in result.stdout.splitlines() if flag in row]
        assert "<bool>" not in line, line


def _piped(cli_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in cli_env.items() if k not in ("COLUMNS", "LINES")}


def _no_trailing_spaces(text: str) -> None:
    padded = [line for line in text.splitlines() if line != line.rstrip()]
    assert not padded, padded[:3]


def test_piped_output_is_whole(database: str, cli_env: dict[str, str]) -> None:
    from pytest_oltpseed.stream import events

    env = _piped(cli_env)
    plan = run_cli("stream", "--dry-run", "--dsn", database, env=env)
    assert plan.returncode == 0, plan.stderr
    mix = events.configured_mix(select("all"), load_settings(env={}).stream, None)
    rows = [line for line in plan.stdout.splitlines() if "│" in line]
    for event in mix.events:  # the names --weights needs, each whole on a row
        assert any(f"│ {event.name} " in row for row in rows), event.name
        assert any(event.description in row for row in rows), event.description
    _no_trailing_spaces(plan.stdout)
    seed_plan = run_cli("seed", "--dry-run", "--dsn", database, env=env)
    title = seed_plan.stdout.splitlines()[0]
    assert title.startswith("dry run: seed MEDIUM") and title.endswith(
        "/" + (database.split("dbname=")[1].split()[0])
    )
    assert "upsert (ON CONFLICT DO NOTHING)" in seed_plan.stdout
    _no_trailing_spaces(seed_plan.stdout)


def test_piped_check_and_preflight_keep_whole_text(
    database: str, cli_env: dict[str, str]
) -> None:
    env = _piped(cli_env)
    with psycopg.connect(database) as conn:
        schema.install(conn, select("hospital"))
        with bind(conn, seed=5):
            for table in select("hospital")[0].tables:
                factory_for(table).create_batch(3)
        conn.commit()
    for command in (["check"], ["cdc", "preflight"]):
        args = [*command, "--domain", "hospital", "--dsn", database]
        table = run_cli(*args, env=env)
        document = json.loads(run_cli(*args, "--json", env=env).stdout)
        _no_trailing_spaces(table.stdout)
        for entry in document.get("rules") or document["checks"]:
            texts = [entry.get("rule") or entry["name"], entry.get("fix", "")]
            for text in filter(None, texts):
                assert text in table.stdout, text


def test_server_status_is_one_line_when_piped(cli_env: dict[str, str]) -> None:
    home = Path(tempfile.gettempdir()) / ("oltpseed-status-" + "x" * 90)
    env = {**_piped(cli_env), "OLTPSEED_HOME": str(home)}
    result = run_cli("server", "status", env=env)
    assert result.returncode == 1
    assert str(home) in _one_line(result.stdout)


def test_dry_run_in_production_says_the_real_run_is_refused(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "APP_ENV": "PROD"}
    for command in ("seed", "stream", "init-db", "reset"):
        result = run_cli(command, "--dry-run", env=env)
        assert result.returncode == 0, result.stderr
        assert "nothing was written" in result.stdout
        line = _one_line(result.stderr)
        assert "real run would stop" in line and "APP_ENV=PROD" in line
    forced = run_cli("seed", "--dry-run", "--force", env=env)
    assert forced.returncode == 0 and "real run" not in forced.stderr


@pytest.mark.parametrize("value", ["", ",,", ";;,,", "consulta=1,"])
def test_weights_follow_one_rule_as_flag_and_variable(
    value: str, cli_env: dict[str, str]
) -> None:
    flag = run_cli("stream", "--dry-run", "--weights", value, env=cli_env)
    variable = run_cli("stream", "--dry-run", env={**cli_env, "STREAM_WEIGHTS": value})
    for result, name in ((flag, "--weights"), (variable, "STREAM_WEIGHTS")):
        assert result.returncode == 2, result.stdout
        assert f"invalid {name}=" in _one_line(result.stderr)


def test_misspelt_seed_override_is_named_with_custom(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "SEED_PACIENTE": "5", "SEED_WORKERS": "1"}
    result = run_cli("seed", "--profile", "CUSTOM", "--dry-run", env=env)
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "SEED_PACIENTE " in line and "did you mean SEED_PACIENTES?" in line
    fixed = {**cli_env, "SEED_PACIENTES": "5", "SEED_WORKERS": "1"}
    ok = run_cli("seed", "--profile", "CUSTOM", "--dry-run", env=fixed)
    assert ok.returncode == 0, ok.stderr


def test_ctrl_c_during_seed_says_what_committed_and_how_to_finish(
    database: str, cli_env: dict[str, str]
) -> None:
    # far more visits than the time to the signal allows (it is sent 0.3 s
    # after the stage before them committed; 300,000 once fit in that)
    env = {**cli_env, "SEED_CONSULTAS": "3000000"}
    args = ["seed", "--profile", "CUSTOM", "--domain", "hospital", "--dsn", database]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_oltpseed", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as a terminal's foreground job gets it: a suite run in the
        # background (`make test &`) hands its children SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the stage before consultas has committed
        seen.append(line)
        if line.startswith("seed: pacientes_convenios"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "Traceback" not in rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("oltpseed: error: interrupted during consultas")
    # With lanes, exames and internacoes may commit beside consultas: the
    # message lists what did, and --only is exactly the rest, in plan order.
    committed = last.split("committed: ")[1].split(";")[0].split(", ")
    assert {"medicos", "convenios", "pacientes", "pacientes_convenios"} <= set(
        committed
    )
    assert "consultas" not in committed
    only = last.split("--only ")[1].split(";")[0].split()[0]
    stages = ["medicos", "convenios", "pacientes", "pacientes_convenios",
              "consultas", "exames", "internacoes"]  # fmt: skip
    assert only.split(",") == [s for s in stages if s not in committed]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM consultas").fetchone() == (0,)
    # the same options but fewer visits: the finish only has to complete
    fewer = {**cli_env, "SEED_CONSULTAS": "300000"}
    finish = run_cli(*args, "--only", only, env=fewer, timeout=300)
    assert finish.returncode == 0, finish.stderr
    counts = json.loads(
        run_cli("counts", "--json", "--domain", "hospital", "--dsn", database,
                env=cli_env).stdout
    )  # fmt: skip
    assert counts["pacientes"] == 2000 and counts["consultas"] == 300000
    assert counts["exames"] == 3500 and counts["internacoes"] == 1200
    bad = run_cli("seed", "--only", "consulta", "--dsn", database, env=cli_env)
    assert bad.returncode == 2 and "consulta" in _one_line(bad.stderr)


def test_partial_pg_variables_say_what_was_filled_in(
    cli_env: dict[str, str],
) -> None:
    env = {**cli_env, "PG_PORT": "1", "PG_PASSWORD": "s3cret"}
    result = run_cli("counts", env=env)
    assert result.returncode == 1
    note, error = result.stderr.strip().splitlines()
    assert "PG_PORT, PG_PASSWORD set, so not the embedded server" in note
    assert "PG_DATABASE=hospital_oltp" in note and "PG_HOST=localhost" in note
    assert "s3cret" not in result.stderr
    assert error.startswith("oltpseed: error: cannot connect")
    complete = {
        **cli_env,
        **{"PG_HOST": "127.0.0.1", "PG_PORT": "1", "PG_USER": "u"},
        "PG_DATABASE": "d",
    }
    quiet = run_cli("counts", env=complete)
    assert "not the embedded server" not in quiet.stderr
