"""Hospital domain: spec 002's OLTP schema (pacientes, medicos, convenios, ...).

Volumes: MEDIUM is spec 002's ``.env`` (SEED_PACIENTES=2000, ...); SMALL is a
tenth, LARGE ten times, STRESS a hundred times, except convênios, which stay
few as real health plans do. Convênio counts exclude the two lookup rows.
"""

from pytest_oltpseed.domains import Domain, sql_root

_MEDIUM = {
    "medicos": 200,
    "convenios": 12,
    "pacientes": 2000,
    "pacientes_convenios": 2500,
    "consultas": 4000,
    "exames": 3500,
    "internacoes": 1200,
}
_CONVENIOS = {"SMALL": 6, "MEDIUM": 12, "LARGE": 20, "STRESS": 30}


def _scaled(profile: str, factor: float) -> dict[str, int]:
    volumes = {table: int(rows * factor) for table, rows in _MEDIUM.items()}
    volumes["convenios"] = _CONVENIOS[profile]
    return volumes


DOMAIN = Domain(
    name="hospital",
    sql=sql_root() / "hospital",
    tables=(
        "medicos",
        "convenios",
        "pacientes",
        "pacientes_convenios",
        "consultas",
        "exames",
        "internacoes",
    ),
    volumes={
        "SMALL": _scaled("SMALL", 0.1),
        "MEDIUM": _scaled("MEDIUM", 1),
        "LARGE": _scaled("LARGE", 10),
        "STRESS": _scaled("STRESS", 100),
    },
)
