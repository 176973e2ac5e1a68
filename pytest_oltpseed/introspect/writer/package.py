"""The package's ``__init__.py``: the ``Domain`` and its volumes."""

from __future__ import annotations


def init_py(
    name: str, header: str, ordered: list[str], volumes: dict[str, dict[str, int]]
) -> str:
    lines = [
        f'"""The {name} domain.\n\n{header}\n"""\n',
        "from pytest_oltpseed.domains import Domain\n",
        "# Rows per table and profile: SMALL is a tenth of MEDIUM, LARGE ten times,",
        "# STRESS a hundred times (a table keyed by its parents' keys is capped at",
        "# the combinations they offer).",
        "VOLUMES = {",
    ]
    for profile, counts in volumes.items():
        lines.append(f"    {profile!r}: {{")
        lines.extend(f"        {t!r}: {n}," for t, n in counts.items())
        lines.append("    },")
    lines += [
        "}\n",
        "DOMAIN = Domain(",
        f"    name={name!r},",
        "    tables=(  # parents before children",
        *(f"        {t!r}," for t in ordered),
        "    ),",
        "    volumes=VOLUMES,",
        "    opt_in=True,  # only when named: --domain all means the built-in ones",
        ")",
    ]
    return "\n".join(lines) + "\n"
