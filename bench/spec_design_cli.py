"""The specs' design as spec 002 runs it: ``python -m scripts.cli seed``.

``spec_design.py`` rebuilds the design's generation and inserts; spec 002
also gives them a shell, which a user pays on every run and which this file
adds around the same :func:`spec_design.seed_tables`:

* a Typer CLI (``scripts/cli.py``) with a ``seed`` command;
* ``config/.env`` read with python-dotenv (PG_*, SEED_*, BATCH_SIZE,
  LOG_LEVEL) and ``config/settings.toml`` (``[db]`` connect_timeout and
  application_name, ``[logging]`` rotation);
* ``logging``: the named logger ``oltp.simulator``, to the console and to
  ``logs/app.log`` rotated at midnight, in the spec's format;
* a commit per batch of BATCH_SIZE rows (``seed.py``: "commit por batch");
* the final counts per table, printed and logged (``seed.py``: "Exibe
  contadores finais por tabela no console e grava em /logs/app.log").

Run from a directory holding ``config/`` (``bench/seed.py`` writes one per
run from the DSN and the profile)::

    python bench/spec_design_cli.py seed      (prints: rows seconds, last)
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import time
import tomllib
from pathlib import Path

import psycopg2
import typer
from dotenv import load_dotenv
from spec_design import seed_tables

TABLES = ("medicos", "convenios", "pacientes", "pacientes_convenios", "consultas",
          "exames", "internacoes")  # fmt: skip
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(funcName)s] - %(message)s"

app = typer.Typer()


@app.callback()
def cli() -> None:
    """The spec's ``scripts/cli.py`` (only ``seed`` is rebuilt here)."""


@app.command()
def seed() -> None:
    """Popula volume inicial (spec 002's ``seed``)."""
    load_dotenv(Path("config") / ".env")
    settings = tomllib.loads((Path("config") / "settings.toml").read_text())
    log = logging.getLogger("oltp.simulator")
    log.setLevel(os.environ.get("LOG_LEVEL", "INFO"))
    Path("logs").mkdir(exist_ok=True)
    rotated = logging.handlers.TimedRotatingFileHandler(
        Path("logs") / "app.log",
        when=settings["logging"]["rotate_when"],
        backupCount=settings["logging"]["backup_count"],
    )
    for handler in (logging.StreamHandler(), rotated):
        handler.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(handler)
    conn = psycopg2.connect(
        host=os.environ["PG_HOST"],
        port=os.environ["PG_PORT"],
        user=os.environ["PG_USER"],
        password=os.environ.get("PG_PASSWORD", ""),
        dbname=os.environ["PG_DATABASE"],
        connect_timeout=settings["db"]["connect_timeout"],
        application_name=settings["db"]["application_name"],
    )
    started = time.perf_counter()
    rows = seed_tables(
        conn,
        lambda table: int(os.environ[f"SEED_{table.upper()}"]),
        int(os.environ["BATCH_SIZE"]),
        per_batch=True,
    )
    cur = conn.cursor()
    for table in TABLES:
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        log.info("%s: total=%d", table, cur.fetchone()[0])
    conn.close()
    print(rows, f"{time.perf_counter() - started:.3f}")


def config(dsn_parts: dict[str, str], counts: dict[str, int], batch: int) -> str:
    """``config/.env`` for a database and volumes, as the spec's example lays
    it out (``bench/seed.py`` writes it, with the spec's settings.toml)."""
    lines = [f"PG_{k.upper()}={v}" for k, v in dsn_parts.items()]
    lines += [f"SEED_{t.upper()}={n}" for t, n in counts.items()]
    lines += [f"BATCH_SIZE={batch}", "LOG_LEVEL=INFO"]
    return "\n".join(lines) + "\n"


SETTINGS = """[db]
search_path = "public"
connect_timeout = 10
application_name = "oltp-simulator"

[stream]
interval_seconds = 2
batch_size = 50
max_jitter_ms = 400
fail_fast_on_critical = true

[seed]
validate_foreign_keys = true

[logging]
level = "INFO"
rotate_when = "midnight"
backup_count = 7
"""
"""spec 002's ``config/settings.toml``, as given."""


if __name__ == "__main__":
    app()
