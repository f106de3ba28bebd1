"""A learned policy as a versioned artifact: weights-only state dict plus a JSON card.

A policy that Tamiyo loads is a trust boundary, like a kernel: it comes from Simic over
the network or from a file. So the weights are the network's state dict in the
safetensors format (a JSON header naming each tensor's dtype, shape and byte range,
then the raw bytes), never a pickle: reading them parses that header and copies bytes,
and no code a file names can run. They are read only after their SHA-256 matches the
card's, which every card must carry. The card (bounded JSON) says what the weights are:
the architecture, the feature schema version of the graphs they read, how they were
trained (recipe, data) and how they validated. On disk a policy is `<id>.safetensors` with
`<id>.json` beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.errors import FailedPrecondition, InvalidArgument

CARD_FORMAT = "esper.tamiyo.policy-card/1"
WEIGHTS_FORMAT = "safetensors"
WEIGHTS_SUFFIX = ".safetensors"
# A zip archive: what torch.save writes (a pickle inside), refused with a clear word.
_ZIP_MAGIC = b"PK\x03\x04"
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
        """The card's feature schema version; 0 (no schema any Tamiyo builds) when it names none."""
        value = self.card.get("feature_schema_version", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def card_json(self) -> str:
        return json.dumps(self.card, indent=2, sort_keys=True)


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
        "weights_format": WEIGHTS_FORMAT,
        "architecture": architecture,
        "feature_schema_version": feature_schema_version,
        "recipe": recipe,
        "data": data,
        "validation": validation,
    }


def state_dict_bytes(state_dict: dict[str, Any]) -> bytes:
    """The weights of a state dict in the safetensors format."""
    from safetensors.torch import save

    return save({key: value.detach().cpu().contiguous() for key, value in state_dict.items()})


def load_state_dict(artifact: PolicyArtifact) -> dict[str, Any]:
    """The state dict, after checking the card's SHA-256: safetensors bytes only, never a pickle."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    expected = str(artifact.card.get("sha256", ""))
    if expected != artifact.sha256:
        found = f"the card's {expected[:12]}" if expected else "the card, which names none"
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights SHA-256 {artifact.sha256[:12]} does not match {found}",
            reason="POLICY_CHECKSUM_MISMATCH",
        )
    if len(artifact.weights) > MAX_WEIGHTS_BYTES:
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights of {len(artifact.weights)} bytes, more than a policy may be",
            reason="POLICY_UNREADABLE",
        )
    if artifact.weights.startswith(_ZIP_MAGIC):
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights are a torch.save archive (a pickle), which Tamiyo never "
            f"loads; a policy's weights are {WEIGHTS_FORMAT}",
            reason="POLICY_UNREADABLE",
        )
    try:
        return load(artifact.weights)
    except (SafetensorError, ValueError) as exc:
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights are not a {WEIGHTS_FORMAT} state dict ({str(exc)[:200]})",
            reason="POLICY_UNREADABLE",
        ) from exc


def write_policy(directory: Path, artifact: PolicyArtifact) -> Path:
    """Write `<id>.safetensors` and `<id>.json` into `directory`; returns the weights' path."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{artifact.policy_id}{WEIGHTS_SUFFIX}"
    weights.write_bytes(artifact.weights)
    (directory / f"{artifact.policy_id}.json").write_text(artifact.card_json() + "\n", encoding="utf-8")
    return weights


def read_policy(path: Path) -> PolicyArtifact:
    """The policy at `path`: its `.safetensors` weights (or the `.json` card) with the other file beside it."""
    path = path.expanduser()
    weights_path = path.with_suffix(WEIGHTS_SUFFIX)
    card_path = path.with_suffix(".json")
    for needed in (weights_path, card_path):
        if not needed.is_file():
            raise InvalidArgument.for_field(
                "policy", f"{str(needed)!r} is not a file (a policy is <id>.safetensors + <id>.json)"
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
