"""The stream job: a continuous, realistic mix of inserts, updates and rare
deletes, committed in batches, with an exact ledger.

- ``runner``: one connection's run, from setup to report, made of
  ``batches`` (a batch, its replays and retries), ``settlement`` (its COMMIT
  and what a commit feeds), ``link`` (connections, reconnects with backoff,
  a lost COMMIT settled), ``faults`` (which errors are soft, retryable,
  critical), ``stopping`` (signals and naps), ``totals`` (the rows shown) and
  ``options`` (the knobs, run ids, shards);
- ``workers``: ``--clients N``, forked runners and their merged ledger;
- ``schedule``: interval and rate pacing;
- ``events``: the runtime domain events run in (mix, samples, candidates);
- ``ledger``, ``merging``: the report, and reports/changes files merged;
- ``progress``: the per-table and progress lines;
- ``pausing``: the per-database pause sentinel.

Nothing is imported here, so a domain can import ``stream.events`` without
loading the runner (which imports the domains).
"""
