"""Which policy a policy id names, and how it is loaded.

  "heuristic-v1"     the built-in heuristic;
  a shipped id       a learned policy in the package (`esper/tamiyo/policies/<id>.safetensors`, e.g. "gnn-v1");
  a path             a policy file on this machine (`<id>.safetensors` with `<id>.json` beside it);
  any other id       a policy Simic trained, fetched through Simic's GetPolicy.
Learned policies load lazily: torch_geometric is imported only when one is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from esper.errors import FailedPrecondition, NotFound
from esper.leyline.v1 import control_pb2, simic_pb2
from esper.tamiyo.artifact import (
    MAX_CARD_BYTES,
    WEIGHTS_SUFFIX,
    PolicyArtifact,
    load_state_dict,
    make_card,
    read_policy,
    state_dict_bytes,
)
from esper.tamiyo.config import HEURISTIC_POLICY_ID, TamiyoConfig
from esper.tamiyo.policy import HeuristicPolicy, Policy

if TYPE_CHECKING:
    from esper.tamiyo.gnn import TamiyoNet
    from esper.tamiyo.learned import LearnedPolicy

BUNDLED_DIR = Path(__file__).resolve().parent / "policies"


class PolicySource(Protocol):
    """Where trained policies are fetched: Simic's GetPolicy (in process or over gRPC)."""

    def get_policy(self, request: simic_pb2.GetPolicyRequest) -> simic_pb2.GetPolicyResponse: ...


def bundled_policy_ids() -> list[str]:
    """Learned policies shipped in the package."""
    return sorted(path.stem for path in BUNDLED_DIR.glob("*.json") if path.with_suffix(WEIGHTS_SUFFIX).is_file())


def is_path(policy: str) -> bool:
    return "/" in policy or policy.endswith((WEIGHTS_SUFFIX, ".json")) or policy.startswith((".", "~"))


def find_artifact(policy: str, source: PolicySource | None = None) -> PolicyArtifact | None:
    """The learned policy `policy` names (shipped, a path or Simic's), or None if nothing knows it."""
    if is_path(policy):
        return read_policy(Path(policy))
    if policy in bundled_policy_ids():
        return read_policy(BUNDLED_DIR / policy)
    if source is None:
        return None
    try:
        response = source.get_policy(simic_pb2.GetPolicyRequest(policy_id=policy, include_weights=True))
    except NotFound:
        return None
    return artifact_from_update(response.policy, response.weights)


def artifact_from_update(update: control_pb2.PolicyUpdate, weights: bytes) -> PolicyArtifact:
    """The artifact Simic serves; its card must be bounded JSON (FailedPrecondition POLICY_UNREADABLE)."""
    import json

    unreadable = f"policy {update.policy_id}: its card is not a JSON object of at most {MAX_CARD_BYTES} bytes"
    if len(update.card_json) > MAX_CARD_BYTES:
        raise FailedPrecondition(unreadable, reason="POLICY_UNREADABLE")
    try:
        card = json.loads(update.card_json) if update.card_json else {}
    except ValueError:
        raise FailedPrecondition(unreadable, reason="POLICY_UNREADABLE") from None
    if not isinstance(card, dict):
        raise FailedPrecondition(unreadable, reason="POLICY_UNREADABLE")
    if update.sha256:
        card.setdefault("sha256", update.sha256)
    return PolicyArtifact(policy_id=update.policy_id, version=update.version, weights=weights, card=card)


def learned_policy(
    artifact: PolicyArtifact,
    config: TamiyoConfig,
    *,
    sample: bool = False,
    sample_decisions: bool = True,
    seed: int = 0,
) -> LearnedPolicy:
    """A LearnedPolicy from an artifact whose feature schema this Tamiyo builds."""
    from esper.tamiyo.gnn import Architecture, TamiyoNet
    from esper.tamiyo.graph import FEATURE_SCHEMA_VERSION
    from esper.tamiyo.learned import LearnedPolicy

    if artifact.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise FailedPrecondition(
            f"policy {artifact.policy_id} reads feature schema {artifact.feature_schema_version}; "
            f"this Tamiyo builds schema {FEATURE_SCHEMA_VERSION}",
            reason="POLICY_SCHEMA_MISMATCH",
        )
    try:
        architecture = Architecture.from_dict(artifact.architecture)
    except (TypeError, ValueError) as exc:
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: card has no usable architecture ({exc})", reason="POLICY_UNREADABLE"
        ) from exc
    net = TamiyoNet(architecture)
    try:
        net.load_state_dict(load_state_dict(artifact), strict=True)
    except RuntimeError as exc:
        raise FailedPrecondition(
            f"policy {artifact.policy_id}: weights do not fit its architecture ({str(exc)[:200]})",
            reason="POLICY_UNREADABLE",
        ) from exc
    return LearnedPolicy(
        config,
        net,
        policy_id=artifact.policy_id,
        version=artifact.version,
        sample=sample,
        sample_decisions=sample_decisions,
        seed=seed,
    )


def policy_artifact(
    net: TamiyoNet,
    policy_id: str,
    *,
    version: int = 1,
    recipe: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    validation: dict[str, Any] | None = None,
    parent_policy_id: str = "",
) -> PolicyArtifact:
    """A network as a policy artifact: its weights-only state dict and its card."""
    weights = state_dict_bytes(net.state_dict())
    card = make_card(
        policy_id=policy_id,
        version=version,
        weights=weights,
        architecture=net.architecture.to_dict(),
        feature_schema_version=net.architecture.feature_schema_version,
        recipe=recipe or {},
        data=data or {},
        validation=validation or {},
        parent_policy_id=parent_policy_id,
    )
    return PolicyArtifact(policy_id=policy_id, version=version, weights=weights, card=card)


def make_policy(policy: str, config: TamiyoConfig, source: PolicySource | None = None) -> Policy:
    """The policy `policy` names; NotFound (POLICY_NOT_FOUND) when nothing knows it."""
    if policy == HEURISTIC_POLICY_ID:
        return HeuristicPolicy(config)
    artifact = find_artifact(policy, source)
    if artifact is None:
        known = [HEURISTIC_POLICY_ID, *bundled_policy_ids()]
        where = "Simic has no such policy" if source is not None else "no Simic is attached to look it up"
        raise NotFound(
            f"policy {policy!r} not found: built in are {', '.join(known)}; {where}", reason="POLICY_NOT_FOUND"
        )
    return learned_policy(artifact, config)
