"""What the commands share: option declarations, the two consoles, and the
settings plumbing of a writing command (precedence and guardrails stay in
:mod:`pytest_oltpseed.config`; this only asks it and says what it answered).

Kept cheap to import: every command module needs it before ``--help`` can
print, so the settings (which load psycopg) are imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pytest_oltpseed.console import Output

if TYPE_CHECKING:
    from pytest_oltpseed.config import Settings


def flag(*names: str, **kwargs: Any) -> Any:
    """An on/off option shown as a plain flag (Typer labels it ``<bool>`` and
    then rejects ``--flag true``; the label is what misleads)."""
    return typer.Option(*names, metavar="", **kwargs)


out = Output()
err = Output(stderr=True)

DsnOption = Annotated[
    str | None,
    typer.Option("--dsn", help="PostgreSQL URL or conninfo; beats DATABASE_URL/PG_*."),
]
DomainOption = Annotated[
    str,
    typer.Option(
        "--domain",
        help="A registered domain (oltpseed domains), a comma-separated list, or "
        "all (every domain that is not opt-in, such as cdclab).",
    ),
]
ForceOption = Annotated[
    bool,
    flag("--force", help="Write even when APP_ENV is production-like."),
]
DryRunOption = Annotated[bool, flag("--dry-run", help="Print the plan; write nothing.")]


def say(line: str) -> None:
    """One ``oltpseed: ...`` line on stderr: notes, warnings, progress."""
    # markup off: a line may quote brackets ("[ui]", a conninfo) that rich eats
    err.print(f"oltpseed: {line}", soft_wrap=True, markup=False)


def writing_settings(
    action: str,
    dsn: str | None,
    force: bool,
    dry_run: bool,
    profile: str | None = None,
    seed_random: int | None = None,
) -> Settings:
    """Settings for a command that writes: the profile's warnings said, the
    guardrail asked (a dry run only says the real run would stop), logs set up."""
    from pytest_oltpseed import logs
    from pytest_oltpseed.config import load_settings

    settings = load_settings(
        dsn=dsn,
        force=force,
        dry_run=dry_run,
        seed_size=profile,
        seed_random=seed_random,
    )
    for warning in settings.profile.warnings:
        say(f"warning: {warning}")
    refused = settings.refusal(action)
    if settings.dry_run and refused is not None:
        say(f"dry run only: the real run would stop here ({refused})")
    if not settings.dry_run:
        settings.guard_write(action)
        logs.setup(settings.logging, console=False)
        for warning in settings.profile.warnings:
            logs.get().warning(warning)
    return settings


def target(settings: Settings) -> str:
    """Where a run would write, named without starting the embedded server."""
    from pytest_oltpseed.config import describe

    if settings.connection.conninfo is None:
        return "the embedded server (not started by a dry run)"
    return describe(settings.connection.conninfo)


ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="SMALL, MEDIUM, LARGE, STRESS or CUSTOM "
        "(default: SEED_SIZE, else MEDIUM).",
    ),
]
SeedRandomOption = Annotated[
    int | None,
    typer.Option(
        "--seed-random",
        min=0,
        help="Random seed (default: SEED_RANDOM, else 0); same seed, same data.",
    ),
]

PauseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--pause-file",
        help="A sentinel file of your choosing (default: STREAM_PAUSE_FILE); "
        "without one, the target database's own sentinel, found from any "
        "directory.",
    ),
]

SlotOption = Annotated[str, typer.Option("--slot", help="Replication slot name.")]
PublicationOption = Annotated[
    str, typer.Option("--publication", help="Publication name.")
]
