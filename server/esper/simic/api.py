"""What Simic offers, as a protocol: the in-process SimicService and the remote SimicClient both fit it."""

from __future__ import annotations

from typing import Protocol

from esper.leyline.v1 import simic_pb2


class SimicApi(Protocol):
    """The SimicService rpcs, one method each, proto request in and proto response out."""

    def record_field_reports(
        self, request: simic_pb2.RecordFieldReportsRequest
    ) -> simic_pb2.RecordFieldReportsResponse:
        """Store adaptation outcomes in the replay buffer; repeats of a report_id are counted, not stored."""
        ...

    def list_field_reports(self, request: simic_pb2.ListFieldReportsRequest) -> simic_pb2.ListFieldReportsResponse:
        """One page of stored reports, newest first, optionally of one run."""
        ...

    def record_transitions(self, request: simic_pb2.RecordTransitionsRequest) -> simic_pb2.RecordTransitionsResponse:
        """Store Tamiyo's decision transitions; repeats of a transition_id are counted, not stored."""
        ...

    def train_policy(self, request: simic_pb2.TrainPolicyRequest) -> simic_pb2.TrainPolicyResponse:
        """Start a training job (behaviour cloning or PPO), gated before it is published."""
        ...

    def get_training_job(self, request: simic_pb2.GetTrainingJobRequest) -> simic_pb2.GetTrainingJobResponse:
        """A training job's state; NotFound (TRAINING_JOB_NOT_FOUND) for an unknown job."""
        ...

    def get_policy(self, request: simic_pb2.GetPolicyRequest) -> simic_pb2.GetPolicyResponse:
        """One trained policy, with its weights if asked; NotFound (POLICY_NOT_FOUND) otherwise."""
        ...

    def list_policies(self, request: simic_pb2.ListPoliciesRequest) -> simic_pb2.ListPoliciesResponse:
        """Trained policies, newest first."""
        ...
