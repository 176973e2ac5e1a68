"""Where the CLI's text goes: rich on a terminal, whole lines everywhere else.

Rich wraps and cuts at 80 columns when it cannot ask a terminal, so a pipe,
a CI log or ``| grep`` lost the ends of event names (which ``--weights``
needs), SQL fixes and even one-line answers. Off a terminal (and unless
``COLUMNS`` says otherwise) nothing is wrapped or cut, and no line keeps the
padding rich adds for alignment.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console

UNLIMITED = 1_000_000
"""The width used off a terminal: wider than any line oltpseed prints."""


class Output(Console):
    """A :class:`rich.console.Console` for one stream (stdout or stderr)."""

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(highlight=False, stderr=stderr)
        self.plain = not self.is_terminal
        if self.plain and not os.environ.get("COLUMNS"):
            self.width = UNLIMITED

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print; off a terminal, without the trailing spaces of padded lines."""
        if not self.plain:
            super().print(*objects, **kwargs)
            return
        with self.capture() as captured:
            super().print(*objects, **kwargs)
        lines = captured.get().split("\n")
        self.file.write("\n".join(line.rstrip() for line in lines))
        self.file.flush()
