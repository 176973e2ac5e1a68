"""The stream job: a continuous, realistic mix of inserts, updates and rare
deletes, committed in batches, with an exact ledger.

- ``runner``: one connection's loop (batches, replays, reconnects, settlement);
- ``workers``: ``--clients N``, forked runners and their merged ledger;
- ``schedule``: interval and rate pacing;
- ``events``: the runtime domain events run in (mix, samples, candidates);
- ``ledger``, ``merging``: the report, and reports/changes files merged;
- ``progress``: the per-table and progress lines;
- ``pausing``: the per-database pause sentinel.

Nothing is imported here, so a domain can import ``stream.events`` without
loading the runner (which imports the domains).
"""
