"""A seed from the page: ``oltpseed seed`` as a child, its progress per table.

The child's plain progress lines (``seed: TABLE DONE/COUNT rows``) move the
page's bars; when it ends, the counts and (if it succeeded) the check run.
"""

from __future__ import annotations

import dataclasses
import time

from pytest_oltpseed.ui.jobs.board import Board
from pytest_oltpseed.ui.jobs.child import Child
from pytest_oltpseed.ui.jobs.forms import SeedForm
from pytest_oltpseed.ui.jobs.reads import Reads
from pytest_oltpseed.ui.jobs.target import Target

SEED_LINE = "seed: "


class SeedJob:
    """Starts one seed at a time and keeps ``board.seed`` up to date."""

    def __init__(self, target: Target, board: Board, reads: Reads) -> None:
        self.target = target
        self.board = board
        self.reads = reads

    def start(self, form: SeedForm) -> None:
        board = self.board
        with board.lock:
            self.target.writing()
            board.busy()
            plan = self.reads.plan(form)
            board.error = ""
            board.check = None
            board.seed = {
                "status": "running",
                "form": dataclasses.asdict(form),
                "plan": plan,
                "stages": {row["table"]: 0 for row in plan},
                "started": time.time(),
            }
        board.touch()
        board.background("seed", lambda: self._run(form))

    def _progress(self, line: str) -> None:
        # the CLI's plain progress: "seed: TABLE DONE/COUNT rows"
        if not line.startswith(SEED_LINE):
            return
        table, _, numbers = line[len(SEED_LINE) :].partition(" ")
        done = numbers.split("/", 1)[0].replace(",", "")
        if done.isdigit():
            with self.board.lock:
                self.board.seed["stages"][table] = int(done)
            self.board.touch()

    def _run(self, form: SeedForm) -> None:
        board = self.board
        child = board.adopt(
            "seed",
            Child.start(
                "seed",
                ["seed", *form.args()],
                self.target.env(form.env()),
                on_stderr=self._progress,
            ),
        )
        code = child.wait()
        with board.lock:
            board.seed["seconds"] = round(time.time() - board.seed["started"], 2)
            board.seed["status"] = "done" if code == 0 else "failed"
            if code != 0:
                board.seed["error"] = child.error()
                board.error = child.error()
        board.touch()
        self.reads.refresh_counts(form.domain)
        if code == 0:
            self.reads.run_check(form.domain)
