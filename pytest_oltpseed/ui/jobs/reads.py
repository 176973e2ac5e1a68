"""The quick reads: the core functions the CLI's read-only commands call.

Each runs on the request's own thread and puts its answer on the board, so
every open tab sees it, not only the one that asked.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_oltpseed import cdc, db, validators
from pytest_oltpseed.domains import select, tables_of
from pytest_oltpseed.seed import seeder
from pytest_oltpseed.ui.jobs.board import Board
from pytest_oltpseed.ui.jobs.forms import SeedForm
from pytest_oltpseed.ui.jobs.target import SLOT, Target


class Reads:
    """``seed --dry-run``, ``counts``, ``cdc preflight``, ``check``."""

    def __init__(self, target: Target, board: Board) -> None:
        self.target = target
        self.board = board

    def plan(self, form: SeedForm) -> list[dict[str, Any]]:
        """``oltpseed seed --dry-run``'s table, as rows."""
        settings = self.target.settings_for(form)
        stages = seeder.plan(select(form.domain), settings.profile)
        rows = [
            {
                "table": s.table,
                "rows": s.count,
                "batch": s.batch_size,
                "mode": "upsert" if s.idempotent else "insert",
                "items": s.item_tables,
            }
            for s in stages
        ]
        board = self.board
        with board.lock:
            board.seed = {
                **board.seed,
                "plan": rows,
                "warnings": list(settings.profile.warnings),
            }
        board.touch()
        return rows

    def refresh_counts(self, domain: str = "all") -> None:
        """``oltpseed counts``."""
        with self.target.connect(autocommit=True) as conn:
            found = db.table_counts(conn, tables_of(select(domain)))
        with self.board.lock:
            self.board.counts = found
        self.board.touch()

    def run_preflight(self, domain: str = "all") -> None:
        """``oltpseed cdc preflight`` for the UI's publication."""
        with self.target.connect(autocommit=True) as conn:
            checks = cdc.preflight(
                conn,
                tables_of(select(domain)),
                SLOT,
                creates="Start with CDC on (the stream's own capture)",
            )
        with self.board.lock:
            self.board.preflight = [dataclasses.asdict(c) for c in checks]
        self.board.touch()

    def run_check(self, domain: str = "all") -> None:
        """``oltpseed check``: every rule, with its violations."""
        domains = select(domain)
        with self.target.connect() as conn:
            covered = validators.coverage(conn, domains, every=domain == "all")
            findings = (
                validators.check_database(conn, covered.domains)
                if covered.problem is None
                else []
            )
            conn.rollback()
        with self.board.lock:
            self.board.check = {
                "ok": covered.problem is None and all(f.ok for f in findings),
                "problem": covered.problem,
                "notes": list(covered.skipped),
                "rules": [{**dataclasses.asdict(f), "ok": f.ok} for f in findings],
            }
        self.board.touch()

    def retained_wal(self) -> int | None:
        """Bytes of WAL the UI's slot holds back (the stream's chart)."""
        with self.target.connect(autocommit=True) as conn:
            return cdc.retained_wal(conn, SLOT)
