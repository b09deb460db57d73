"""The central counter: ingest, dedup, occupancy, capacity leases, daily reset, exports.

- `store`: the SQLite schema (named migrations) and batched writes; one writer.
- `sequences`, `occupancy`, `leases`: pure bookkeeping (per-gate seq and gaps, occupancy per
  event day, capacity allowances).
- `core`: one batch of MQTT messages -> one transaction -> messages to publish.
- `service`: the running counter (`Counter(venue, db, broker_url).start()`), MQTT edge.
- `registry`: the badge manifest import; `queries`, `exports`: read-only views.
- `cli`: `sesame counter run|import-badges`, `sesame export attendance`.
"""
