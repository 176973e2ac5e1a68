"""What a verification may do to a slot, decided before it touches one.

``cdc verify`` reads a slot and then, by default, drops it; ``--consume``
advances it; only ``--keep`` without ``--consume`` merely reads. Whether a run
writes decides whether the environment guardrail is asked, and a run that
writes must first prove the slot and publication are oltpseed's (:func:`claim`)
so that someone else's capture is never read past or dropped. These rules
were the CLI's; they live here so that every shell (the CLI, the UI's child
process, a test) applies the same ones.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pytest_oltpseed.cdc.capture import PUBLICATION, SLOT, claim, drop
from pytest_oltpseed.cdc.verify import parse_report
from pytest_oltpseed.errors import UsageError


@dataclass(frozen=True)
class SlotUse:
    """How one verification uses a slot and its publication."""

    slot: str = SLOT
    publication: str = PUBLICATION
    keep: bool = False  # keep the slot and publication after the verdict
    consume: bool = False  # advance the slot past what was read (else peek)

    @property
    def writes(self) -> bool:
        """Whether the run changes the server: consuming advances the slot and
        not keeping drops it."""
        return self.consume or not self.keep

    @property
    def action(self) -> str | None:
        """What the guardrail is asked to allow; ``None`` when the run only reads."""
        if not self.writes:
            return None
        what = "consume" if self.consume else "drop"
        return (
            f"{what} replication slot {self.slot} (--keep without --consume only reads)"
        )


@contextlib.contextmanager
def guarded(conn: psycopg.Connection, use: SlotUse) -> Iterator[None]:
    """Claim the slot before anything is read (exit 3 for someone else's), and
    drop it once the verification ran unless ``use.keep``.

    Nothing is dropped when the body fails: a verification that could not run
    leaves its capture for the next try.
    """
    if use.writes:
        claim(conn, use.slot, use.publication, "consume" if use.consume else "drop")
    yield
    if not use.keep:  # the verification ran: its capture has served
        drop(conn, slot=use.slot, publication=use.publication)


def read_inputs(report: Path | None, changes: Path | None) -> dict[str, Any] | None:
    """The stream report to verify against (``None`` for a changes file only),
    checked before any connection so that a bad input leaves the slot untouched
    (exit 2)."""
    if report is None and changes is None:
        raise UsageError("nothing to verify against: give --report, --changes or both")
    if report is None:
        return None
    try:
        document: dict[str, Any] | None = json.loads(report.read_text(encoding="utf-8"))
    except OSError as exc:  # the reason once: the path is already in the line
        raise UsageError(
            f"cannot read --report {report}: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:
        raise UsageError(f"cannot read --report {report}: not JSON ({exc})") from None
    parse_report(document or {})
    return document
