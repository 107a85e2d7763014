"""The hot path's Core statements, built once at import: one module per job.

- ``leases``: picking an item for a worker and leasing it; expiring leases.
- ``answers``: claiming a lease by its token and recording the answer with its reward.
- ``quality``: reads and writes behind the quality rules (suspension, dynamic overlap).
- ``shapes``: the typed rows they return, read by column name.
- ``build``: small helpers for writing statements that insert from a select.

Building a statement costs more than running it on SQLite, so each is built once and compiled
once per dialect by ``storage/driver.py``.
"""
