"""Logging: the three files, their routing, and masking of personal data."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from pytest_oltpseed import logs
from pytest_oltpseed.config import LogSettings
from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("cpf=123.456.789-09 duplicado", "cpf=***.***.***-09 duplicado"),
        ("cpf 12345678909", "cpf *********09"),
        ("cnpj=11.222.333/0001-81", "cnpj=**.***.***/****-81"),
        ("cnpj 11222333000181", "cnpj ************81"),
        ("tel +55 (11) 91234-5678", "tel +** (**) *****-**78"),
        ("tel (021) 3456 7890", "tel (***) **** **90"),
        ("tel 0800 123 4567", "tel **** *** **67"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert logs.mask(raw) == masked


@pytest.mark.parametrize(
    "harmless",
    [
        "consultas: +50 (total=12340) batch=50",
        "2026-11-23 19:00:12",
        "lsn 0/16B3748 xid 7521",
        "port 54321",
    ],
)
def test_mask_leaves_ordinary_numbers(harmless: str) -> None:
    assert logs.mask(harmless) == harmless


def test_files_routing_and_masking(tmp_path: Path) -> None:
    logger = logs.setup(LogSettings(level="INFO", directory=tmp_path), console=False)
    logger.info(
        "pacientes: inserted cpf=%s phone=%s", "123.456.789-09", "(11) 98765-4321"
    )
    logs.get("stream").info("consultas: +50 (total=%d)", 12340)
    try:
        raise ValueError("duplicate key cnpj=11.222.333/0001-81")
    except ValueError:
        logs.get("stream").exception("insert failed")
    for handler in logger.handlers:
        handler.flush()
    app = (tmp_path / "app.log").read_text()
    stream = (tmp_path / "stream.log").read_text()
    errors = (tmp_path / "errors.log").read_text()
    text = app + stream + errors
    assert "123.456.789-09" not in text and "***.***.***-09" in app
    assert "98765-4321" not in text
    assert "11.222.333/0001-81" not in text and "**.***.***/****-81" in errors
    assert "ValueError" in errors  # tracebacks are kept, masked
    assert "consultas: +50 (total=12340)" in stream
    assert "pacientes: inserted" not in stream  # stream.log is the stream's only
    assert "consultas" not in errors and "insert failed" in errors
    assert " INFO oltp.simulator.stream [test_files_routing_and_masking] - " in app


def test_numbers_that_are_not_personal_data_stay_whole(tmp_path: Path) -> None:
    """A seed, a count or an xid of ten digits or more looks like a phone
    number, but only text can carry personal data: numeric arguments stay."""
    logger = logs.setup(LogSettings(level="INFO", directory=tmp_path), console=False)
    logger.info("stream abc: seed %d, xid %d", 1234567890, 98765432101)
    logger.info("phone %s, %r, count %.1f", "(11) 98765-4321", "11987654321", 2.5)
    for handler in logger.handlers:
        handler.flush()
    app = (tmp_path / "app.log").read_text()
    assert "stream abc: seed 1234567890, xid 98765432101" in app
    assert "phone (**) *****-**21, '*********21', count 2.5" in app


def test_stream_logs_its_seed_whole(database: str, cli_env: dict[str, str]) -> None:
    done = run_cli(
        "stream", "--dsn", database, "--domain", "hospital", "--max-events", "5",
        "--interval", "0", "--seed-random", "1234567890", env=cli_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    logged = (Path(cli_env["LOG_DIR"]) / "stream.log").read_text(encoding="utf-8")
    assert ", seed 1234567890, " in logged and ", seed 1234567890, " in done.stderr


def test_cli_writes_app_log(database: str, cli_env: dict[str, str]) -> None:
    result = run_cli("init-db", "--dsn", database, env=cli_env)
    assert result.returncode == 0, result.stderr
    app = Path(cli_env["LOG_DIR"]) / "app.log"
    assert "init-db: installed hospital, retail" in app.read_text()


def test_unwritable_log_dir_is_config_error(
    cli_env: dict[str, str], tmp_path: Path, database: str
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli(
        "init-db", "--dsn", database, env={**cli_env, "LOG_DIR": str(blocker / "logs")}
    )
    assert result.returncode == 2
    assert "invalid LOG_DIR=" in result.stderr and "writable directory" in result.stderr


@pytest.mark.parametrize("command", [("init-db",), ("seed", "--profile", "SMALL")])
def test_an_unwritable_log_file_is_one_line_before_any_write(
    cli_env: dict[str, str], tmp_path: Path, database: str, command: tuple[str, ...]
) -> None:
    """The directory exists but a file in it cannot be opened (here a directory
    in its place, which stops root too; as a user, a file of root's): the
    files open lazily, so this printed a traceback per record and exited 0."""
    logs_dir = tmp_path / "logs"
    (logs_dir / "app.log").mkdir(parents=True)
    result = run_cli(*command, "--dsn", database, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"oltpseed: error: invalid LOG_DIR='{logs_dir}': expected a writable "
        "directory (app.log: Is a directory)"
    ]
    with psycopg.connect(database) as conn:  # refused before it wrote
        found = conn.execute("SELECT to_regclass('pacientes')").fetchone()
    assert found == (None,)


def test_setup_creates_no_empty_log_files(tmp_path: Path) -> None:
    logs.setup(LogSettings(level="INFO", directory=tmp_path), console=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def teardown_module() -> None:
    logger = logging.getLogger(logs.LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
