"""Tamiyo's transitions at rest: records in SQL, tensors in the object store, each stored once.

A transition's observation graph and masks (the tensors) go to the object store
under `transitions/<transition_id>.pb` as a PolicyTransition holding only them; the
rest of the message (ids, actions, log-probability, value, accuracy) is the row's
`record`. The object is written before the row, so a row always names bytes that
exist; the database refuses a repeated transition id, so a redelivery or a second
Simic stores it once (rewriting identical bytes at worst). Reading joins the two
and checks the object's SHA-256 against the row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from esper.errors import DataLoss
from esper.leyline.v1 import policy_pb2
from esper.simic.db import SimicDatabase, transitions
from esper.urza.store import ObjectStore

_TENSOR_FIELDS = ("observation", "action_mask", "kernel_mask")


@dataclass(frozen=True)
class Recorded:
    """What one insert did: transitions newly stored and transitions already there."""

    accepted: int
    duplicates: int


def object_key(transition_id: str) -> str:
    return f"transitions/{transition_id}.pb"


def split(transition: policy_pb2.PolicyTransition) -> tuple[bytes, bytes]:
    """(record without tensors, tensors only), both serialized deterministically."""
    record = policy_pb2.PolicyTransition()
    record.CopyFrom(transition)
    tensors = policy_pb2.PolicyTransition()
    for name in _TENSOR_FIELDS:
        record.ClearField(name)
        if transition.HasField(name):
            getattr(tensors, name).CopyFrom(getattr(transition, name))
    return record.SerializeToString(deterministic=True), tensors.SerializeToString(deterministic=True)


class TransitionStore:
    def __init__(self, database: SimicDatabase, objects: ObjectStore) -> None:
        self._database = database
        self._objects = objects

    def add(self, items: Sequence[policy_pb2.PolicyTransition], create_us: int) -> Recorded:
        """Store each transition whose id is new; rows of one call commit together."""
        ids = [item.transition_id for item in items]
        with self._database.read() as conn:
            known = set(
                conn.execute(select(transitions.c.transition_id).where(transitions.c.transition_id.in_(ids))).scalars()
            )
        accepted = 0
        seen: set[str] = set()
        rows = []
        for item in items:
            if item.transition_id in known or item.transition_id in seen:
                continue
            seen.add(item.transition_id)
            record, tensors = split(item)
            key = object_key(item.transition_id)
            self._objects.put(key, tensors)
            rows.append(
                {
                    "transition_id": item.transition_id,
                    "run_id": item.run_id,
                    "epoch": int(item.epoch),
                    "policy_id": item.policy_id,
                    "policy_version": int(item.policy_version),
                    "fallback": bool(item.fallback),
                    "record": record,
                    "object_key": key,
                    "sha256": hashlib.sha256(tensors).hexdigest(),
                    "create_us": create_us,
                }
            )
        with self._database.write() as conn:
            for row in rows:
                # RETURNING, not rowcount: on PostgreSQL rowcount is -1 whether or not the row was stored.
                if conn.execute(self._insert_new().values(**row)).first() is not None:
                    accepted += 1
        return Recorded(accepted=accepted, duplicates=len(items) - accepted)

    def load(self, *, policy_ids: Sequence[str] = (), limit: int = 10_000) -> list[policy_pb2.PolicyTransition]:
        """Up to `limit` transitions, newest first, of the given policies (all when empty), whole again."""
        query = select(transitions.c.record, transitions.c.object_key, transitions.c.sha256).order_by(
            transitions.c.seq.desc()
        )
        if policy_ids:
            query = query.where(transitions.c.policy_id.in_(list(policy_ids)))
        with self._database.read() as conn:
            rows = conn.execute(query.limit(limit)).all()
        loaded = []
        for row in rows:
            tensors = self._objects.get(row.object_key)
            if hashlib.sha256(tensors).hexdigest() != row.sha256:
                raise DataLoss(f"transition object {row.object_key} does not match its recorded SHA-256")
            transition = policy_pb2.PolicyTransition.FromString(row.record)
            transition.MergeFromString(tensors)
            loaded.append(transition)
        return loaded

    def count(self, *, policy_id: str = "") -> int:
        query = select(func.count()).select_from(transitions)
        if policy_id:
            query = query.where(transitions.c.policy_id == policy_id)
        with self._database.read() as conn:
            return int(conn.execute(query).scalar_one())

    def _insert_new(self) -> Any:
        insert = sqlite_insert if self._database.dialect == "sqlite" else pg_insert
        skip = insert(transitions).on_conflict_do_nothing(index_elements=["transition_id"])
        return skip.returning(transitions.c.seq)
