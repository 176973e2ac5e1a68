"""library: the worked example of docs/domains.md (authors and their books).

Loaded with ``--domain-path tests/data/domains`` (or OLTPSEED_DOMAIN_PATH,
or the pytest ini key ``seed_domain_path``); its SQL is in ``sql/`` beside
this file, which the registry finds on its own.
"""

from pytest_oltpseed.domains import Domain

_MEDIUM = {"authors": 300, "books": 1200}

DOMAIN = Domain(
    name="library",
    tables=("authors", "books"),  # parents before children
    volumes={
        profile: {table: int(rows * factor) for table, rows in _MEDIUM.items()}
        for profile, factor in (
            ("SMALL", 0.1),
            ("MEDIUM", 1),
            ("LARGE", 10),
            ("STRESS", 100),
        )
    },
)
