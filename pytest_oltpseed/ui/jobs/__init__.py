"""The UI's state and its background work, apart from any web framework.

Long work runs as ``oltpseed`` child processes (the very commands a user would
type), each in its own session, so a closed tab stops nothing and the CLI's
guardrails, signals and one-line errors apply unchanged. Quick reads (plan,
counts, preflight, a slot's retained WAL) call the same core functions the CLI
commands call.

One module per job: :mod:`.target` (which database, its guardrail, the
children's environment), :mod:`.board` (the state every tab sees, its lock and
the work running for it), :mod:`.child` (one ``oltpseed`` child process),
:mod:`.forms` (the page's forms as CLI options), :mod:`.reads` (the quick
reads), :mod:`.seeding`, :mod:`.streaming` and :mod:`.pause` (the long work).
:class:`Hub` puts them together behind the verbs the routes call.
"""

from __future__ import annotations

from pytest_oltpseed.ui.jobs.child import Child
from pytest_oltpseed.ui.jobs.forms import SeedForm, StreamForm, changes_of
from pytest_oltpseed.ui.jobs.hub import Hub
from pytest_oltpseed.ui.jobs.target import SLOT

__all__ = ["SLOT", "Child", "Hub", "SeedForm", "StreamForm", "changes_of"]
