"""The state every tab sees, its version, and the work running for it.

One re-entrant lock guards it all, so a job's update and a tab's snapshot
never interleave; ``changed`` wakes each tab's live feed on every change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pytest_oltpseed import db
from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.ui.jobs.child import Child


class Board:
    """What the page shows, plus the children and threads doing the work."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.seed: dict[str, Any] = {"status": "idle"}
        self.stream: dict[str, Any] = {"status": "idle", "samples": []}
        self.counts: dict[str, int | None] = {}
        self.check: dict[str, Any] | None = None
        self.preflight: list[dict[str, Any]] | None = None
        self.error = ""
        self.closing = False  # set on Ctrl-C: live feeds end, work is stopped
        self.children: dict[str, Child] = {}
        self.threads: list[threading.Thread] = []

    def touch(self) -> None:
        with self.lock:
            self.version += 1
            self.changed.notify_all()

    def close(self) -> None:
        """Let every live feed end now (the server is shutting down)."""
        with self.lock:
            self.closing = True
        self.touch()

    def wait_change(self, seen: int, timeout: float) -> int:
        with self.changed:
            if self.version == seen:
                self.changed.wait(timeout)
            return self.version

    def fail(self, message: str) -> None:
        with self.lock:
            self.error = message
        self.touch()

    def set_stream(self, **values: Any) -> None:
        with self.lock:
            self.stream.update(values)
        self.touch()

    def adopt(self, slot: str, child: Child) -> Child:
        """Keep ``child`` under ``slot`` (seed, cdc, stream) so it can be stopped."""
        with self.lock:
            self.children[slot] = child
        return child

    def busy(self) -> None:
        """One seed or stream at a time (a stream's slot and its report are one)."""
        if self.seed.get("status") == "running":
            raise OltpseedError("a seed is still running; wait for it")
        if self.stream.get("status") in ("starting", "running", "verifying"):
            raise OltpseedError("a stream is still running; stop it first")
        for child in self.children.values():
            if child.running():
                raise OltpseedError(f"{child.name} is still running; wait or stop it")

    def background(self, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` on a thread; what it raises becomes the page's error."""

        def run() -> None:
            try:
                work()
            except OltpseedError as exc:
                self.fail(str(exc))
            except Exception as exc:  # one line on the page, never a traceback
                self.fail(f"{name}: {db.first_line(exc)}")

        thread = threading.Thread(target=run, name=f"ui-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()
