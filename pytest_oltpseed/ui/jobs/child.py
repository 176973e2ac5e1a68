"""One running ``oltpseed`` command, its output collected line by line."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest_oltpseed", *args]


def last_line(text: str) -> str:
    """The CLI's one error line, without its ``oltpseed: error:`` prefix."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line.removeprefix("oltpseed: error: ").removeprefix("oltpseed: ")


@dataclasses.dataclass
class Child:
    """One running ``oltpseed`` command; its output is collected line by line."""

    name: str
    proc: subprocess.Popen[str]
    stdout: list[str] = dataclasses.field(default_factory=list)
    stderr: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def start(
        cls,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        on_stderr: Callable[[str], None] | None = None,
    ) -> Child:
        proc = subprocess.Popen(
            _cli(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
            start_new_session=True,  # the UI's Ctrl-C is relayed, not shared
        )
        child = cls(name, proc)
        threading.Thread(
            target=child._drain, args=(proc.stdout, child.stdout, None), daemon=True
        ).start()
        threading.Thread(
            target=child._drain,
            args=(proc.stderr, child.stderr, on_stderr),
            daemon=True,
        ).start()
        return child

    @staticmethod
    def _drain(pipe: Any, into: list[str], each: Callable[[str], None] | None) -> None:
        for line in pipe:
            into.append(line.rstrip("\n"))
            if each is not None:
                each(line.rstrip("\n"))

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self) -> int:
        code = self.proc.wait()
        time.sleep(0.05)  # let the drain threads take the last lines
        return code

    def interrupt(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGINT)

    def error(self) -> str:
        return last_line("\n".join(self.stderr)) or f"{self.name} failed"
