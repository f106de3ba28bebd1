"""Trained policies at rest: the PolicyUpdate (card included) in SQL, the weights in the object store.

Versions are monotonic from 1 and unique, as are policy ids. Weights live under
`policies/<policy_id>/<sha256>.safetensors`; reading them back checks the SHA-256 the update
announces. A policy is stored whether or not it passed the validation gate;
`published` says whether it did (and was announced on Oona).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select, update

from esper.errors import AlreadyExists, DataLoss, NotFound
from esper.leyline.v1 import control_pb2
from esper.simic.db import SimicDatabase, policies
from esper.urza.store import ObjectStore


@dataclass(frozen=True)
class PolicyPage:
    """Policies newest first; `cursor` is the seq of the last one, `more` whether older ones remain."""

    policies: list[control_pb2.PolicyUpdate]
    cursor: int
    more: bool


def weights_key(policy_id: str, sha256: str) -> str:
    return f"policies/{policy_id}/{sha256}.safetensors"


class PolicyStore:
    def __init__(self, database: SimicDatabase, objects: ObjectStore) -> None:
        self._database = database
        self._objects = objects

    def next_version(self) -> int:
        with self._database.read() as conn:
            return int(conn.execute(select(func.coalesce(func.max(policies.c.version), 0))).scalar_one()) + 1

    def add(self, policy: control_pb2.PolicyUpdate, weights: bytes, *, published: bool, create_us: int) -> None:
        """Store a new policy; AlreadyExists if its id or version is taken."""
        if hashlib.sha256(weights).hexdigest() != policy.sha256:
            raise DataLoss(f"policy {policy.policy_id}: weights do not match the SHA-256 of its update")
        key = weights_key(policy.policy_id, policy.sha256)
        self._objects.put(key, weights)
        with self._database.write() as conn:
            taken = conn.execute(
                select(policies.c.policy_id).where(
                    (policies.c.policy_id == policy.policy_id) | (policies.c.version == int(policy.version))
                )
            ).first()
            if taken is not None:
                raise AlreadyExists(
                    f"policy {policy.policy_id} v{policy.version}: the id or version is taken by {taken.policy_id}",
                    reason="POLICY_EXISTS",
                )
            conn.execute(
                policies.insert().values(
                    policy_id=policy.policy_id,
                    version=int(policy.version),
                    update=policy.SerializeToString(deterministic=True),
                    object_key=key,
                    published=published,
                    create_us=create_us,
                )
            )

    def get(self, policy_id: str) -> tuple[control_pb2.PolicyUpdate, bool]:
        """The policy's update and whether it was published; NotFound (POLICY_NOT_FOUND) otherwise."""
        with self._database.read() as conn:
            row = conn.execute(
                select(policies.c.update, policies.c.published).where(policies.c.policy_id == policy_id)
            ).first()
        if row is None:
            raise NotFound(f"policy {policy_id!r} not found in Simic", reason="POLICY_NOT_FOUND")
        return control_pb2.PolicyUpdate.FromString(row.update), bool(row.published)

    def weights(self, policy_id: str) -> bytes:
        found, _ = self.get(policy_id)
        data = self._objects.get(weights_key(found.policy_id, found.sha256))
        if hashlib.sha256(data).hexdigest() != found.sha256:
            raise DataLoss(f"policy {policy_id}: stored weights do not match their SHA-256")
        return data

    def mark_published(self, policy_id: str) -> None:
        with self._database.write() as conn:
            conn.execute(update(policies).where(policies.c.policy_id == policy_id).values(published=True))

    def latest_published(self) -> control_pb2.PolicyUpdate | None:
        with self._database.read() as conn:
            row = conn.execute(
                select(policies.c.update).where(policies.c.published).order_by(policies.c.version.desc()).limit(1)
            ).first()
        return control_pb2.PolicyUpdate.FromString(row.update) if row is not None else None

    def page(self, *, before: int, limit: int) -> PolicyPage:
        query = select(policies.c.seq, policies.c.update).order_by(policies.c.seq.desc())
        if before:
            query = query.where(policies.c.seq < before)
        with self._database.read() as conn:
            rows = conn.execute(query.limit(limit + 1)).all()
        shown = rows[:limit]
        return PolicyPage(
            policies=[control_pb2.PolicyUpdate.FromString(row.update) for row in shown],
            cursor=shown[-1].seq if shown else 0,
            more=len(rows) > limit,
        )
