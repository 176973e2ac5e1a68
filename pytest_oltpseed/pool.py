"""A pool of ready clones for ``oltp_database`` (integresql's idea).

``CREATE DATABASE ... TEMPLATE`` of a MEDIUM template takes about 150 ms, and
dropping a clone costs more time again: paid inside every test that asks for
``oltp_database``. The pool moves both off the test's path: a background
thread keeps ``size`` clones of each template a test has asked for ready, a
test takes one at once, and its clone is dropped by the same thread after
the test. Spares (and clones not yet dropped) go when the session ends.
Size 0 disables it: clone and drop in the test, as before. Each xdist worker
has a pool of its own (on the one shared server).
"""

from __future__ import annotations

import collections
import contextlib
import threading

import psycopg

from pytest_oltpseed.errors import OltpseedError
from pytest_oltpseed.templates import Janitor


class ClonePool:
    """Ready clones per template, made and dropped by one background thread."""

    def __init__(self, janitor: Janitor, size: int) -> None:
        self.janitor = janitor
        self.size = size
        self._ready: dict[str, collections.deque[str]] = {}
        self._to_drop: list[str] = []
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.error: Exception | None = None  # the thread's last failure

    def take(self, template: str) -> str:
        """A clone of ``template`` for one test: a ready one when there is one."""
        if self.size <= 0:
            return self.janitor.clone(template)
        with self._lock:
            ready = self._ready.setdefault(template, collections.deque())
            name = ready.popleft() if ready else None
            self._start()
            self._lock.notify()
        # none ready yet (the first test, or tests faster than the thread)
        return name if name is not None else self.janitor.clone(template)

    def give_back(self, name: str) -> None:
        """The test is done with ``name``: drop it (later, unless the pool is off)."""
        if self.size <= 0:
            self.janitor.drop(name)
            return
        with self._lock:
            self._to_drop.append(name)
            self._lock.notify()

    def close(self) -> None:
        """Stop the thread; drop the spares and every clone handed back."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
        leftovers = self._to_drop + [n for q in self._ready.values() for n in q]
        self._to_drop, self._ready = [], {}
        for name in leftovers:
            with contextlib.suppress(OltpseedError, psycopg.Error):
                self.janitor.drop(name)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="oltpseed-clone-pool", daemon=True
            )
            self._thread.start()

    def _next_job(self) -> tuple[str, str] | None:
        """What to do next, under the lock: fill a short template first (a test
        may be waiting for it), then drop; ``None`` when stopping."""
        while not self._stopping:
            for template, ready in self._ready.items():
                if len(ready) < self.size:
                    return "clone", template
            if self._to_drop:
                return "drop", self._to_drop.pop()
            self._lock.wait()
        return None

    def _run(self) -> None:
        while True:
            with self._lock:
                job = self._next_job()
            if job is None:
                return
            action, name = job
            try:
                if action == "clone":
                    clone = self.janitor.clone(name)
                    with self._lock:
                        if self._stopping:
                            self._to_drop.append(clone)
                        else:
                            self._ready[name].append(clone)
                else:
                    self.janitor.drop(name)
            except (OltpseedError, psycopg.Error) as exc:
                # the server went away or refused: stop making clones; a test
                # that needs one clones it itself and reports the error
                with self._lock:
                    self.error = exc
                    self._stopping = True
                return
