"""``oltpseed pause`` and ``resume`` from the page: the same sentinel file.

Every stream on the database obeys it, the UI's own and any a user started
in a terminal, so the page and the CLI can never disagree about a pause.
"""

from __future__ import annotations

from pathlib import Path

from pytest_oltpseed.stream import pausing
from pytest_oltpseed.ui.jobs.board import Board
from pytest_oltpseed.ui.jobs.target import Target


class Pause:
    """The target database's pause sentinel, found once."""

    def __init__(self, target: Target, board: Board) -> None:
        self.target = target
        self.board = board
        self._path: Path | None = None

    def sentinel(self) -> Path:
        """The pause sentinel ``oltpseed pause`` uses for the target database
        (``--pause-file``/``STREAM_PAUSE_FILE`` when set), found once."""
        explicit = self.target.settings.stream.pause_file
        if explicit is not None:
            return explicit
        if self._path is None:
            with self.target.connect(autocommit=True) as conn:
                self._path = pausing.database_sentinel(conn)
        return self._path

    def pause(self) -> None:
        """``oltpseed pause``: the same sentinel every running stream obeys."""
        self.target.writing()
        pausing.pause(self.sentinel())
        self.board.set_stream(paused=True)

    def resume(self) -> None:
        """``oltpseed resume``."""
        pausing.resume(self.sentinel())
        self.board.set_stream(paused=False)
