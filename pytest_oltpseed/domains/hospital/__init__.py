"""Hospital domain: spec 002's OLTP schema (pacientes, medicos, convenios, ...)."""

from pytest_oltpseed.domains import Domain

DOMAIN = Domain(
    name="hospital",
    tables=(
        "medicos",
        "convenios",
        "pacientes",
        "pacientes_convenios",
        "consultas",
        "exames",
        "internacoes",
    ),
)
