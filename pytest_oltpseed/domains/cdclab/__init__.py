"""cdclab: an opt-in domain of the edge cases CDC pipelines break on.

TOAST (large values left unchanged by updates), the types connectors
convert, a primary key that changes and cascades, a composite key, a table
without a primary key, columns added and dropped mid-stream, large
transactions and TRUNCATE (docs/cdc.md, "Edge cases"). Opt-in: ``--domain
all`` keeps meaning the business domains; ask for it with ``--domain cdclab``.
Volumes are small: the point is the shape of each change, not the mass.
"""

from pytest_oltpseed.domains import Domain, sql_root

_SMALL = {
    "lab_documents": 10,
    "lab_documents_full": 10,
    "lab_types": 50,
    "lab_accounts": 20,
    "lab_entries": 60,
    "lab_evolving": 20,
}


def _scaled(factor: int) -> dict[str, int]:
    return {table: rows * factor for table, rows in _SMALL.items()}


DOMAIN = Domain(
    name="cdclab",
    sql=sql_root() / "cdclab",
    tables=(
        "lab_documents",
        "lab_documents_full",
        "lab_types",
        "lab_accounts",
        "lab_entries",
        "lab_slots",
        "lab_log",
        "lab_evolving",
        "lab_bulk",
    ),
    volumes={
        "SMALL": _scaled(1),
        "MEDIUM": _scaled(5),
        "LARGE": _scaled(50),
        "STRESS": _scaled(200),
    },
    opt_in=True,
)
