"""Simic, the policy sculptor: the replay store Tamiyo's policies learn from, their training and their artifacts.

`SimicService` is the SimicService API in process: it stores field reports and
decision transitions once each (records in SQLite or PostgreSQL, tensors in its
object store), trains policies by behaviour cloning or PPO, gates them on a
validation suite and keeps them as versioned artifacts (docs/policy.md).
"""
