"""Volume profiles (spec 000 §3): how many rows each table gets, and batch sizes.

Each domain declares its own volumes per profile (a domain is data); this
module composes them. ``CUSTOM`` is MEDIUM plus ``SEED_<TABLE>`` overrides
(``SEED_PRODUCTS``, ``SEED_PACIENTES``, ...); an override given with another
profile is ignored, and :func:`resolve` says so in a warning naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PROFILE_NAMES: tuple[str, ...] = ("SMALL", "MEDIUM", "LARGE", "STRESS", "CUSTOM")
DEFAULT_PROFILE = "MEDIUM"
DEFAULT_AS_OF = datetime(2026, 1, 1)
"""Default "now" of generated data (naive, UTC): fixed so a seed reproduces rows."""
BATCH_SIZES = {"SMALL": 500, "MEDIUM": 500, "LARGE": 500, "STRESS": 1000}


@dataclass(frozen=True)
class Profile:
    """A resolved profile: rows per table (headers; items follow them), batch size."""

    name: str
    counts: Mapping[str, int]
    batch_size: int
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def count(self, table: str) -> int:
        return self.counts.get(table, 0)


def override_name(table: str) -> str:
    return f"SEED_{table.upper()}"


def resolve(
    name: str, overrides: Mapping[str, tuple[str, str]] | None = None
) -> Profile:
    """The profile ``name`` with ``SEED_<TABLE>`` overrides applied (CUSTOM only).

    ``overrides`` maps variable name -> (raw value, source). Raises
    :class:`~pytest_oltpseed.errors.ConfigError` for a bad number.
    """
    from pytest_oltpseed.domains import active, registry
    from pytest_oltpseed.errors import ConfigError

    base = DEFAULT_PROFILE if name == "CUSTOM" else name
    counts: dict[str, int] = {}
    # Domains in use last: theirs are the counts of a table two domains name.
    for domain in sorted(registry().values(), key=lambda d: d.name in active()):
        counts.update(domain.volumes[base])
    batch = BATCH_SIZES[base]
    warnings: list[str] = []
    known = {override_name(table): table for table in counts}
    for variable, (raw, source) in sorted((overrides or {}).items()):
        if variable == "SEED_BATCH_SIZE":
            table = None
        elif variable in known:
            table = known[variable]
        elif name == "CUSTOM":
            raise _unknown(variable, source, [*known, "SEED_BATCH_SIZE"])
        else:
            continue
        if name != "CUSTOM":
            warnings.append(
                f"{variable} ignored: overrides apply only with SEED_SIZE=CUSTOM "
                f"(profile is {name})"
            )
            continue
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = -1
        if value < (1 if table is None else 0):
            allowed = "an integer >= 1" if table is None else "an integer >= 0"
            raise ConfigError(variable, raw, allowed, source)
        if table is None:
            batch = value
        else:
            counts[table] = value
    return Profile(name, counts, batch, tuple(warnings))


def _unknown(variable: str, source: str, known: list[str]) -> Exception:
    """A misspelt ``SEED_<TABLE>`` named, with the likely one (a silently
    ignored override would seed the profile's count instead)."""
    import difflib

    from pytest_oltpseed.errors import UsageError

    close = difflib.get_close_matches(variable, known, n=1)
    hint = f"did you mean {close[0]}?" if close else "no table has that name"
    return UsageError(
        f"unknown {variable} (from {source}) with SEED_SIZE=CUSTOM: {hint} "
        f"(overrides: {', '.join(sorted(known))})"
    )


def marker_profile(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """The profile a ``seed_profile`` marker names: ``("LARGE")`` or ``(name=...)``.

    Anything else (no name, two names, an unknown keyword or profile) raises
    :class:`~pytest_oltpseed.errors.UsageError`: a marker that silently meant
    the default profile would seed a database the test did not ask for.
    """
    from pytest_oltpseed.errors import UsageError

    usage = 'use @pytest.mark.seed_profile("LARGE") or seed_profile(name="LARGE")'
    extra = sorted(set(kwargs) - {"name"})
    if extra:
        raise UsageError(f"seed_profile marker: unknown keyword {extra[0]!r}; {usage}")
    given = [*args, *([kwargs["name"]] if "name" in kwargs else [])]
    if len(given) != 1:
        what = "no profile" if not given else f"{len(given)} profiles"
        raise UsageError(f"seed_profile marker: {what} given; {usage}")
    name = str(given[0]).upper()
    if name not in PROFILE_NAMES:
        raise UsageError(
            f"seed_profile marker: unknown profile {given[0]!r}: expected one of "
            f"{', '.join(PROFILE_NAMES)}"
        )
    return name
