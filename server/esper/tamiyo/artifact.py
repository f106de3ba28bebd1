"""A learned policy as a versioned artifact: weights-only state dict plus a JSON card.

The weights are `torch.save` of the network's state dict and nothing else; they are
read back with `torch.load(weights_only=True)`, which refuses anything but tensors
and plain containers, and only after their SHA-256 matches the card's. The card
says what the weights are: the architecture, the feature schema version of the
graphs they read, how they were trained (recipe, data) and how they validated.
On disk a policy is `<id>.pt` with `<id>.json` beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.errors import FailedPrecondition, InvalidArgument

POLICY_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CARD_FORMAT = "esper.tamiyo.policy-card/1"
MAX_WEIGHTS_BYTES = 64 * 1024 * 1024
MAX_CARD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PolicyArtifact:
    """Weights and card of one policy. `card` is plain JSON data."""

    policy_id: str
    version: int
    weights: bytes
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.weights).hexdigest()

    @property
    def architecture(self) -> dict[str, Any]:
        return dict(self.card.get("architecture", {}))

    @property
    def feature_schema_version(self) -> int:
        return int(self.card.get("feature_schema_version", 0))

    def card_json(self) -> str:
        return json.dumps(self.card, indent=2, sort_keys=True)


def check_policy_id(policy_id: str, what: str = "policy_id") -> str:
    if not POLICY_ID_PATTERN.fullmatch(policy_id):
        raise InvalidArgument.for_field(what, f"must match {POLICY_ID_PATTERN.pattern}, got {policy_id!r}")
    return policy_id


def make_card(
    *,
    policy_id: str,
    version: int,
    weights: bytes,
    architecture: dict[str, Any],
    feature_schema_version: int,
    recipe: dict[str, Any],
    data: dict[str, Any],
    validation: dict[str, Any],
    parent_policy_id: str = "",
) -> dict[str, Any]:
    """The card of a new policy; the weights' SHA-256 binds card and weights together."""
    return {
        "format": CARD_FORMAT,
        "policy_id": policy_id,
        "kind": "learned",
        "version": version,
        "parent_policy_id": parent_policy_id,
        "sha256": hashlib.sha256(weights).hexdigest(),
        "architecture": architecture,
        "feature_schema_version": feature_schema_version,
        "recipe": recipe,
        "data": data,
        "validation": validation,
    }


def state_dict_bytes(state_dict: dict[str, Any]) -> bytes:
    """The weights of a state dict as `torch.save` writes them."""
    import torch

    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu().clone() for key, value in state_dict.items()}, buffer)
    return buffer.getvalue()


def load_state_dict(artifact: PolicyArtifact) -> dict[str, Any]:
    """The state dict, after checking the card's SHA-256; tensors only (weights_only)."""
    import torch

    expected = str(artifact.card.get("sha256", ""))
    if expected and expected != artifact.sha256:
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights SHA-256 {artifact.sha256[:12]} does not match the card's "
            f"{expected[:12]}",
            reason="POLICY_CHECKSUM_MISMATCH",
        )
    try:
        loaded = torch.load(io.BytesIO(artifact.weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same error to the caller
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights are not a weights-only state dict ({exc})",
            reason="POLICY_UNREADABLE",
        ) from exc
    if not isinstance(loaded, dict) or not all(isinstance(key, str) for key in loaded):
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights are not a state dict", reason="POLICY_UNREADABLE"
        )
    return loaded


def write_policy(directory: Path, artifact: PolicyArtifact) -> Path:
    """Write `<id>.pt` and `<id>.json` into `directory`; returns the weights' path."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{artifact.policy_id}.pt"
    weights.write_bytes(artifact.weights)
    (directory / f"{artifact.policy_id}.json").write_text(artifact.card_json() + "\n", encoding="utf-8")
    return weights


def read_policy(path: Path) -> PolicyArtifact:
    """The policy at `path`: its `.pt` weights (or the `.json` card) with the other file beside it."""
    path = path.expanduser()
    weights_path = path.with_suffix(".pt")
    card_path = path.with_suffix(".json")
    for needed in (weights_path, card_path):
        if not needed.is_file():
            raise InvalidArgument.for_field(
                "policy", f"{str(needed)!r} is not a file (a policy is <id>.pt + <id>.json)"
            )
    if weights_path.stat().st_size > MAX_WEIGHTS_BYTES or card_path.stat().st_size > MAX_CARD_BYTES:
        raise InvalidArgument.for_field("policy", f"{str(path)!r} is larger than a policy may be")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvalidArgument.for_field("policy", f"{str(card_path)!r} is not JSON: {exc}") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise InvalidArgument.for_field("policy", f"{str(card_path)!r} is not a policy card ({CARD_FORMAT})")
    return PolicyArtifact(
        policy_id=str(card.get("policy_id") or path.stem),
        version=int(card.get("version", 0)),
        weights=weights_path.read_bytes(),
        card=card,
    )
