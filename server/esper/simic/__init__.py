"""Simic, the policy sculptor: keeps the replay buffer of field reports Tamiyo's policy trains on.

`SimicService` is the SimicService API in process; it stores field reports once
each (by report id) in SQLite or PostgreSQL. Policy training belongs to Simic's
own issue: its rpcs answer UNIMPLEMENTED until then.
"""
