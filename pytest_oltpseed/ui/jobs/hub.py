"""The one object the routes and ``oltpseed ui`` hold: each verb to its job."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_oltpseed.config import Settings, describe
from pytest_oltpseed.domains import select
from pytest_oltpseed.ui.jobs.board import Board
from pytest_oltpseed.ui.jobs.forms import SeedForm, StreamForm
from pytest_oltpseed.ui.jobs.pause import Pause
from pytest_oltpseed.ui.jobs.reads import Reads
from pytest_oltpseed.ui.jobs.seeding import SeedJob
from pytest_oltpseed.ui.jobs.streaming import StreamJob
from pytest_oltpseed.ui.jobs.target import Target


class Hub:
    """Everything the page shows, and the one place that starts work.

    Methods raise :class:`~pytest_oltpseed.errors.OltpseedError` with one
    line; the routes show it. The work itself lives in one class per job.
    """

    def __init__(self, settings: Settings, conninfo: str, *, force: bool) -> None:
        self.target = Target(settings, conninfo, force)
        self.board = Board()
        self.workdir = Path(tempfile.mkdtemp(prefix="oltpseed-ui-"))
        self.reads = Reads(self.target, self.board)
        self.seeding = SeedJob(self.target, self.board, self.reads)
        self.pausing = Pause(self.target, self.board)
        self.streaming = StreamJob(
            self.target, self.board, self.reads, self.pausing, self.workdir
        )

    # -- what the page shows -----------------------------------------------------
    @property
    def closing(self) -> bool:
        return self.board.closing

    def guard(self) -> str | None:
        """Why writing is refused here (the CLI's own rule), or None."""
        return self.target.guard()

    def snapshot(self) -> dict[str, Any]:
        settings, board = self.target.settings, self.board
        with board.lock:
            return {
                "version": board.version,
                "target": describe(self.target.conninfo),
                "embedded": settings.connection.conninfo is None,
                "app_env": settings.app_env,
                "guard": self.guard(),
                "forced": settings.force and settings.production_like,
                "seed": board.seed,
                "stream": board.stream,
                "counts": board.counts,
                "check": board.check,
                "preflight": board.preflight,
                "error": board.error,
                # CUSTOM's fields: the tables SEED_<TABLE> can set, MEDIUM's counts
                "custom": {d.name: d.volumes["MEDIUM"] for d in select("all")},
            }

    def close(self) -> None:
        """Let every live feed end now (the server is shutting down)."""
        self.board.close()

    def wait_change(self, seen: int, timeout: float) -> int:
        return self.board.wait_change(seen, timeout)

    def fail(self, message: str) -> None:
        self.board.fail(message)

    # -- the routes' verbs ---------------------------------------------------------
    def plan(self, form: SeedForm) -> list[dict[str, Any]]:
        """``oltpseed seed --dry-run``'s table, as rows."""
        return self.reads.plan(form)

    def refresh_counts(self, domain: str = "all") -> None:
        self.reads.refresh_counts(domain)

    def run_preflight(self, domain: str = "all") -> None:
        self.reads.run_preflight(domain)

    def run_check(self, domain: str = "all") -> None:
        self.reads.run_check(domain)

    def start_seed(self, form: SeedForm) -> None:
        self.seeding.start(form)

    def start_stream(self, form: StreamForm) -> None:
        self.streaming.start(form)

    def stop_stream(self) -> bool:
        return self.streaming.stop()

    def pause(self) -> None:
        self.pausing.pause()

    def resume(self) -> None:
        self.pausing.resume()

    def report_file(self, changes: bool = False) -> Path | None:
        return self.streaming.report_file(changes)

    # -- the end -------------------------------------------------------------------
    def shutdown(self, say: Callable[[str], None], timeout: float = 30.0) -> None:
        """Ctrl-C on ``oltpseed ui``: stop a running stream like SIGINT, wait
        for its summary (and the CDC verdict), and print them."""
        board = self.board
        if self.stop_stream():
            say("stopping the running stream (SIGINT)")
            deadline = time.monotonic() + timeout
            for thread in board.threads:
                thread.join(max(deadline - time.monotonic(), 0.1))
            with board.lock:
                summary, verdict = board.stream.get("summary"), board.stream["verdict"]
            if summary:
                say(summary)
            if verdict is not None:
                say(
                    "cdc verify: "
                    + (
                        "every committed change captured once"
                        if verdict["ok"]
                        else "DIFFERENCES"
                    )
                )
        for child in board.children.values():
            if child.running():
                child.interrupt()
        reports = sorted(self.workdir.glob("*.json"))
        if reports:
            say(f"stream reports kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
