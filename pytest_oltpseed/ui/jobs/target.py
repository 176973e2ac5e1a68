"""The database the UI works on: its guardrail and its children's environment.

The rule that refuses writing is the CLI's own (``Settings.refusal``); the
children get the same target through ``DATABASE_URL`` so each command the UI
starts is the one a user would type against that database.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import psycopg

from pytest_oltpseed import db
from pytest_oltpseed.config import Settings, load_settings
from pytest_oltpseed.errors import GuardrailRefused
from pytest_oltpseed.ui.jobs.forms import SeedForm

SLOT = "oltpseed_ui"  # the UI's own slot and publication: never a user's


@dataclasses.dataclass(frozen=True)
class Target:
    """Which database, the settings it was chosen with, and ``--force``."""

    settings: Settings
    conninfo: str
    force: bool

    def guard(self) -> str | None:
        """Why writing is refused here (the CLI's own rule), or None."""
        return self.settings.refusal("write from the UI")

    def writing(self) -> None:
        refused = self.guard()
        if refused is not None:
            raise GuardrailRefused(refused)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A child's environment: this target, never a stale ``SEED_<TABLE>``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEED_")}
        for key in ("SEED_RANDOM", "SEED_AS_OF", "SEED_WORKERS"):
            if key in os.environ:
                env[key] = os.environ[key]
        env["DATABASE_URL"] = self.conninfo
        env["NO_COLOR"] = "1"
        if self.force:
            env["FORCE_SEED"] = "true"
        env.update(extra or {})
        return env

    def settings_for(self, form: SeedForm | None = None) -> Settings:
        """The settings a child would load, with the form's profile and seed."""
        env = self.env(form.env() if form else None)
        return load_settings(
            dsn=self.conninfo,
            force=self.force,
            seed_size=form.profile if form else None,
            seed_random=form.seed_random if form else None,
            env=env,
        )

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        return db.connect(self.conninfo, self.settings, autocommit=autocommit)
