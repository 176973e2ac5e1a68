"""A stream from the page: ``cdc start``, ``stream``, then ``cdc verify``.

Each step is the CLI command as a child. While the stream runs, its report
(rewritten every SAMPLE_S by the child itself) feeds the charts; stopping is
SIGINT, as Ctrl-C in a terminal, so the child finishes its open batch and
writes its report and summary before the verdict is taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from pytest_oltpseed.ui.jobs.board import Board
from pytest_oltpseed.ui.jobs.child import Child
from pytest_oltpseed.ui.jobs.forms import SAMPLE_S, StreamForm, changes_of
from pytest_oltpseed.ui.jobs.pause import Pause
from pytest_oltpseed.ui.jobs.reads import Reads
from pytest_oltpseed.ui.jobs.target import SLOT, Target

RATE_WINDOW_S = 3.0  # events/s over this window
MAX_SAMPLES = 300  # five minutes of chart at SAMPLE_S


class StreamJob:
    """Starts one stream at a time and keeps ``board.stream`` up to date."""

    def __init__(
        self,
        target: Target,
        board: Board,
        reads: Reads,
        pause: Pause,
        workdir: Path,
    ) -> None:
        self.target = target
        self.board = board
        self.reads = reads
        self.pause = pause
        self.workdir = workdir  # the runs' reports and changes files

    def start(self, form: StreamForm) -> None:
        board = self.board
        with board.lock:
            self.target.writing()
            board.busy()
            report = self.workdir / f"stream-{int(time.time() * 1000)}.json"
            board.error = ""
            board.stream = {
                "status": "starting",
                "form": dataclasses.asdict(form),
                "report": str(report),
                "samples": [],
                "ledger": None,
                "summary": "",
                "verdict": None,
                "paused": False,
                "wal_bytes": None,
            }
        board.touch()
        board.background("stream", lambda: self._run(form, report))

    def _capture(self, form: StreamForm) -> bool:
        """``oltpseed cdc start`` on the UI's own slot; False (shown) if refused."""
        args = ["cdc", "start", "--domain", form.domain]
        args += ["--slot", SLOT, "--publication", SLOT]
        start = self.board.adopt(
            "cdc", Child.start("cdc start", args, self.target.env())
        )
        if start.wait() == 0:
            return True
        error = start.error()
        if "already exists" in error:  # left by a UI that was killed
            error += (
                f"; the UI's own: oltpseed cdc stop --slot {SLOT} --publication {SLOT}"
            )
        self.board.set_stream(status="failed", error=error)
        self.board.fail(error)
        return False

    def _run(self, form: StreamForm, report: Path) -> None:
        if form.cdc and not self._capture(form):
            return
        child = self.board.adopt(
            "stream",
            Child.start("stream", ["stream", *form.args(report)], self.target.env()),
        )
        self.board.set_stream(status="running")
        started = time.monotonic()
        history: list[tuple[float, int]] = []
        while child.running():
            time.sleep(SAMPLE_S)
            self._sample(report, form.cdc, started, history)
        code = child.wait()
        self._sample(report, form.cdc, started, history)
        ledger = _read(report)
        error = child.error() if code not in (0, 130) else ""
        self.board.set_stream(
            status="verifying" if form.cdc else ("done" if not error else "failed"),
            summary="\n".join(child.stdout),
            ledger=ledger,
            exit_code=code,
            paused=False,
            error=error,
        )
        if error:
            self.board.fail(error)
        if form.cdc:
            self._verify(form, report, ledger)
        self.reads.refresh_counts(form.domain)

    def _verify(
        self, form: StreamForm, report: Path, ledger: dict[str, Any] | None
    ) -> None:
        """``oltpseed cdc verify --json``; it drops the UI's slot after."""
        args = ["cdc", "verify", "--report", str(report), "--domain", form.domain]
        if changes_of(report).exists():  # key by key as well as per table
            args += ["--changes", str(changes_of(report))]
        args += ["--slot", SLOT, "--publication", SLOT, "--json"]
        if ledger is None:  # nothing to reconcile: just release the WAL
            args = ["cdc", "stop", "--slot", SLOT, "--publication", SLOT]
        child = self.board.adopt(
            "cdc", Child.start("cdc verify", args, self.target.env())
        )
        code = child.wait()
        verdict = None
        with contextlib.suppress(ValueError):
            verdict = json.loads("\n".join(child.stdout)) if ledger else None
        failed = code not in (0, 1) or (ledger is not None and verdict is None)
        self.board.set_stream(
            status="failed" if failed else "done",
            verdict=verdict,
            wal_bytes=None,
        )
        if failed:
            self.board.fail(child.error())

    def _sample(
        self,
        report: Path,
        with_slot: bool,
        started: float,
        history: list[tuple[float, int]],
    ) -> None:
        """One point of the charts, from the report the stream keeps writing.

        events/s is taken over the last RATE_WINDOW_S: the report is rewritten
        on the stream's own clock, so two reads in a row may see the same one.
        """
        document = _read(report)
        if document is None:
            return
        now = time.monotonic()
        committed = int(document["events"]["committed"])
        history.append((now, committed))
        while len(history) > 2 and now - history[1][0] >= RATE_WINDOW_S:
            history.pop(0)
        first_t, first_n = history[0]
        rate = (committed - first_n) / (now - first_t) if now > first_t else 0.0
        wal = None
        if with_slot:
            with contextlib.suppress(Exception):
                wal = self.reads.retained_wal()
        ops = {
            op: sum(t[op] for t in document["tables"].values())
            for op in ("insert", "update", "delete")
        }
        point = {
            "t": round(now - started, 2),
            "events_per_s": round(rate, 1),
            "committed": committed,
            "latency": document["latency_ms"],
            "lag": document["lag_ms"],
            "ops": ops,
            "wal_bytes": wal,
        }
        board = self.board
        with board.lock:
            samples = board.stream["samples"]
            samples.append(point)
            del samples[:-MAX_SAMPLES]
            board.stream["ledger"] = document
            board.stream["wal_bytes"] = wal
            board.stream["paused"] = self.pause.sentinel().exists()
        board.touch()

    def stop(self) -> bool:
        """Stop the running stream as Ctrl-C would (SIGINT: it finishes the
        open batch, writes its report and prints its summary)."""
        with self.board.lock:
            child = self.board.children.get("stream")
        if child is None or not child.running():
            return False
        if self.board.stream.get("paused"):
            self.pause.resume()
        child.interrupt()
        return True

    def report_file(self, changes: bool = False) -> Path | None:
        """The last run's report (or, with ``changes``, its changes file)."""
        with self.board.lock:
            path = self.board.stream.get("report")
        if not path:
            return None
        found = changes_of(Path(path)) if changes else Path(path)
        return found if found.exists() else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
