"""Names oltpseed gives its objects on a server, in a module free of imports.

The capture's slot and publication are defaults of the CLI's options, which
``oltpseed cdc start --help`` prints; kept here rather than in
:mod:`pytest_oltpseed.cdc.capture` so that printing them loads no psycopg.
"""

from __future__ import annotations

SLOT = "oltpseed_cdc"
PUBLICATION = "oltpseed_cdc"
