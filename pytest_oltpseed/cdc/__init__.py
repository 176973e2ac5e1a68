"""Change data capture without Debezium: slots, decoding, verification.

One module per job:

* :mod:`~pytest_oltpseed.cdc.capture` - publications and logical slots
  (created, marked as oltpseed's, read by peeking or consuming, dropped);
* :mod:`~pytest_oltpseed.cdc.pgoutput` - the pgoutput protocol decoder;
* :mod:`~pytest_oltpseed.cdc.changes` - the changes file (``stream
  --changes``): its line format, writer and reader;
* :mod:`~pytest_oltpseed.cdc.verify` - what the slot decoded, set against a
  stream report and/or a changes file;
* :mod:`~pytest_oltpseed.cdc.keys` - the key-by-key comparison (missing,
  duplicate, extra, reordered), for any source of received changes;
* :mod:`~pytest_oltpseed.cdc.guard` - what a verification may do to a slot
  (whether it writes, the claim before reading, the drop after);
* :mod:`~pytest_oltpseed.cdc.preflight` - what a Debezium connector needs.

The names below are the package's API (``from pytest_oltpseed import cdc``).
"""

from __future__ import annotations

from pytest_oltpseed.cdc.capture import (
    PLUGINS,
    PUBLICATION,
    SLOT,
    TAG,
    Captured,
    capturing,
    claim,
    create,
    current_lsn,
    drop,
    read,
    require_logical,
    retained_wal,
    slot_plugin,
)
from pytest_oltpseed.cdc.changes import OPS
from pytest_oltpseed.cdc.guard import SlotUse, guarded, read_inputs
from pytest_oltpseed.cdc.keys import Issue, KeyLine, KeyVerdict
from pytest_oltpseed.cdc.pgoutput import Change, Message, Transaction
from pytest_oltpseed.cdc.preflight import IDENTITY, Check, preflight
from pytest_oltpseed.cdc.verify import (
    Line,
    Verdict,
    Verification,
    batch_tag,
    parse_report,
    reconcile,
    verify,
)

__all__ = [
    "IDENTITY",
    "OPS",
    "PLUGINS",
    "PUBLICATION",
    "SLOT",
    "TAG",
    "Captured",
    "Change",
    "Check",
    "Issue",
    "KeyLine",
    "KeyVerdict",
    "Line",
    "Message",
    "SlotUse",
    "Transaction",
    "Verdict",
    "Verification",
    "batch_tag",
    "capturing",
    "claim",
    "create",
    "current_lsn",
    "drop",
    "guarded",
    "parse_report",
    "preflight",
    "read",
    "read_inputs",
    "reconcile",
    "require_logical",
    "retained_wal",
    "slot_plugin",
    "verify",
]
