"""The lifecycle gates: what to do with each seed Tamiyo is adapting.

A seed signals readiness; Tamiyo decides. Per stage:
  GERMINATED     promote it again (the load did not start), cancel after the stage timeout.
  TRAINING       >= min_training_epochs and ready -> GRAFTING; cancelled after the timeout.
  GRAFTING       ready (alpha reached 1) -> STABILIZATION.
  STABILIZATION  ready -> EVALUATING.
  EVALUATING     ready: eval gain > min_eval_gain -> FINE_TUNING (or FOSSILIZE for a kernel
                 without trainable parameters, on the same terms as after fine-tuning),
                 else CULL; culled after the timeout.
  FINE_TUNING    after fine_tune_epochs: FOSSILIZE on a measured improvement, else CULL.
A measured improvement is both: validation accuracy at least the accuracy at germination
plus fossilize_min_improvement, and an eval gain (accuracy with the seed on minus with
it blended out, alpha 0) above min_eval_gain. A seed that holds up a model worse than
before it germinated is not an improvement.
Harm (accuracy more than harm_threshold below the germination accuracy) culls from
EVALUATING on. CULL is not a legal command while GRAFTING or STABILIZATION (the seed
lifecycle, docs/lifecycle.md), so harm seen there is recorded and acted on at EVALUATING,
which then culls without waiting for readiness. A drop is not blamed on a seed whose
measured eval gain is positive: the model then depends on it, and the host is often
still settling around the new block (measured: such dips recover during fine-tuning).
Such a seed fine-tunes and must then show a measured improvement like any other;
otherwise it is culled, and Tolaria takes the run back to the checkpoint taken before
its graft when that validated better, so a drop that does not recover is undone.

A seed that Kasmina ended on its own (a load failure or an isolation violation culls
it; a rollback locks it) finishes with the matching outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from esper.leyline.v1 import blueprint_pb2, lifecycle_pb2
from esper.tamiyo.config import TamiyoConfig
from esper.tamiyo.issued import OUTCOME_SCORE, CommandType, Outcome, field_report, make_command
from esper.tamiyo.observation import Observation, SeedView, StepOutcome, stage_name
from esper.tamiyo.state import Adaptation, GrowthStep, RunState, SeedStage

_OBSERVED_OUTCOMES: dict[SeedStage, Outcome] = {
    lifecycle_pb2.SEED_STAGE_FOSSILIZED: lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED,
    lifecycle_pb2.SEED_STAGE_CULLED: lifecycle_pb2.ADAPTATION_OUTCOME_CULLED,
    lifecycle_pb2.SEED_STAGE_CANCELLED: lifecycle_pb2.ADAPTATION_OUTCOME_CANCELLED,
    lifecycle_pb2.SEED_STAGE_ROLLED_BACK: lifecycle_pb2.ADAPTATION_OUTCOME_ROLLED_BACK,
}
_NOT_LOADED: frozenset[SeedStage] = frozenset({lifecycle_pb2.SEED_STAGE_GERMINATED, lifecycle_pb2.SEED_STAGE_LOADING})
_FAILURES: frozenset[Outcome] = frozenset(
    {
        lifecycle_pb2.ADAPTATION_OUTCOME_CULLED,
        lifecycle_pb2.ADAPTATION_OUTCOME_ROLLED_BACK,
    }
)
_COMMAND_OUTCOME: dict[CommandType, Outcome] = {
    lifecycle_pb2.COMMAND_TYPE_FOSSILIZE: lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED,
    lifecycle_pb2.COMMAND_TYPE_CULL: lifecycle_pb2.ADAPTATION_OUTCOME_CULLED,
    lifecycle_pb2.COMMAND_TYPE_CANCEL_GERMINATION: lifecycle_pb2.ADAPTATION_OUTCOME_CANCELLED,
}
_ADVANCE = lifecycle_pb2.COMMAND_TYPE_ADVANCE
_CULL = lifecycle_pb2.COMMAND_TYPE_CULL


class LifecycleGates:
    """Applies the gates to every tracked adaptation, in seed layout order."""

    def __init__(self, config: TamiyoConfig) -> None:
        self._config = config

    def run(self, state: RunState, observation: Observation, out: StepOutcome) -> None:
        for view in observation.seeds:
            adaptation = state.adaptations.get(view.seed_id)
            if adaptation is not None:
                self._gate(state, observation, view, adaptation, out)
        self._forget_removed(state, observation, out)

    def track(self, state: RunState, observation: Observation, out: StepOutcome) -> list[tuple[SeedView, Adaptation]]:
        """`run`'s bookkeeping without its decisions: adaptations Kasmina ended are finished and
        reported, the others see their stage and measured gain; returns those still under way.

        Only the tracked seeds are visited (in layout order): a run may have thousands of seeds.
        """
        rows = observation.rows
        active = []
        for seed_id in sorted((s for s in state.adaptations if s in rows), key=rows.__getitem__):
            view = observation.seeds[rows[seed_id]]
            adaptation = state.adaptations[seed_id]
            if view.stage in _OBSERVED_OUTCOMES or view.stage == lifecycle_pb2.SEED_STAGE_DORMANT:
                self._observed_end(state, observation, view, adaptation, out)
                continue
            self._observe(view, adaptation, observation.epoch)
            active.append((view, adaptation))
        self._forget_removed(state, observation, out)
        return active

    def _forget_removed(self, state: RunState, observation: Observation, out: StepOutcome) -> None:
        for seed_id in sorted(set(state.adaptations) - observation.rows.keys()):
            reason = f"seed {seed_id} is no longer in the run's seed layout"
            self.finish(
                state,
                observation,
                state.adaptations[seed_id],
                lifecycle_pb2.ADAPTATION_OUTCOME_CANCELLED,
                reason,
                out,
                parameter_count=None,
            )
            out.wait(seed_id, reason)

    def finish(
        self,
        state: RunState,
        observation: Observation,
        adaptation: Adaptation,
        outcome: Outcome,
        reason: str,
        out: StepOutcome,
        *,
        parameter_count: int | None,
        growth_kind: int = blueprint_pb2.GROWTH_KIND_DEPTH,
    ) -> None:
        """End an adaptation: forget it, score its blueprint, embargo a failed slot, report it once.

        A fossilization is also a growth step: what it added and what it bought (the
        lesser of its eval gain and the accuracy gained since germination), from which
        Tamiyo judges whether growth still pays and which layer pays best.
        """
        state.adaptations.pop(adaptation.seed_id, None)
        state.score_blueprint(adaptation.blueprint_id, OUTCOME_SCORE[outcome])
        if outcome in _FAILURES:
            state.record_failure(adaptation.seed_id, observation.epoch, self._config.embargo_epochs)
        if outcome == lifecycle_pb2.ADAPTATION_OUTCOME_FOSSILIZED:
            gain = observation.score - adaptation.pre_metric
            if adaptation.eval_gain:
                gain = min(gain, adaptation.eval_gain)
            gain = max(-1.0, min(1.0, gain))
            state.growth_steps.append(
                GrowthStep(adaptation.seed_id, growth_kind, parameter_count or 0, gain, observation.epoch)
            )
        out.finished_seeds.add(adaptation.seed_id)
        out.field_reports.append(
            field_report(observation.boundary, adaptation, outcome, reason, parameter_count=parameter_count)
        )

    def _gate(
        self,
        state: RunState,
        observation: Observation,
        view: SeedView,
        adaptation: Adaptation,
        out: StepOutcome,
    ) -> None:
        stage = view.stage
        if stage in _OBSERVED_OUTCOMES or stage == lifecycle_pb2.SEED_STAGE_DORMANT:
            self._observed_end(state, observation, view, adaptation, out)
            return
        self._observe(view, adaptation, observation.epoch)
        decide = _STAGE_GATES.get(stage)
        if decide is None:
            out.wait(view.seed_id, f"kernel {adaptation.kernel_id} is {stage_name(stage)}; waiting")
            return
        verdict = decide(self, state, observation, view, adaptation)
        if verdict.command_type is None:
            out.wait(view.seed_id, verdict.reason)
            return
        out.act(
            make_command(
                observation.boundary,
                view.seed_id,
                verdict.command_type,
                verdict.reason,
                target_stage=verdict.target,
            )
        )
        outcome = _COMMAND_OUTCOME.get(verdict.command_type)
        if outcome is not None:
            self.finish(
                state,
                observation,
                adaptation,
                outcome,
                verdict.reason,
                out,
                parameter_count=_parameter_count(view),
                growth_kind=_growth_kind(view),
            )

    def _observe(self, view: SeedView, adaptation: Adaptation, epoch: int) -> None:
        stage = view.stage
        adaptation.observe_stage(stage, epoch)
        # The gain is measured during EVALUATING (valid once the seed is ready) and may be re-measured later.
        measured = stage == lifecycle_pb2.SEED_STAGE_FINE_TUNING or (
            stage == lifecycle_pb2.SEED_STAGE_EVALUATING and view.ready
        )
        if view.telemetry is not None and measured:
            adaptation.eval_gain = view.telemetry.eval_gain

    def _observed_end(
        self,
        state: RunState,
        observation: Observation,
        view: SeedView,
        adaptation: Adaptation,
        out: StepOutcome,
    ) -> None:
        stage = view.stage
        was = stage_name(adaptation.last_stage)
        if stage == lifecycle_pb2.SEED_STAGE_DORMANT:
            if adaptation.last_stage in _NOT_LOADED:
                outcome = lifecycle_pb2.ADAPTATION_OUTCOME_CANCELLED
                reason = f"germination of kernel {adaptation.kernel_id} was not applied: the seed is still DORMANT"
            else:
                outcome = lifecycle_pb2.ADAPTATION_OUTCOME_CULLED
                reason = f"seed returned to DORMANT from {was} without a Tamiyo command (Kasmina culled it)"
        else:
            outcome = _OBSERVED_OUTCOMES[stage]
            reason = f"Kasmina reports the seed {stage_name(stage)} (last seen {was})"
            if view.telemetry is not None and view.telemetry.isolation_violations:
                reason += f"; {view.telemetry.isolation_violations} gradient-isolation violations"
        self.finish(
            state,
            observation,
            adaptation,
            outcome,
            reason,
            out,
            parameter_count=_parameter_count(view),
            growth_kind=_growth_kind(view),
        )
        out.wait(view.seed_id, reason)

    def _germinated(self, state: RunState, obs: Observation, view: SeedView, a: Adaptation) -> _Verdict:
        n = a.epochs_in_stage(obs.epoch)
        if n >= self._config.stage_timeout_epochs:
            return _Verdict(
                lifecycle_pb2.COMMAND_TYPE_CANCEL_GERMINATION,
                f"kernel {a.kernel_id} did not start loading in {n} epochs; cancelling",
            )
        return _Verdict(
            _ADVANCE,
            f"seed still GERMINATED: promote kernel {a.kernel_id} from the queue again",
            lifecycle_pb2.SEED_STAGE_LOADING,
        )

    def _training(self, state: RunState, obs: Observation, view: SeedView, a: Adaptation) -> _Verdict:
        config, n = self._config, a.epochs_in_stage(obs.epoch)
        loss = f", seed loss {view.telemetry.seed_loss:.4g}" if view.telemetry is not None else ""
        if n >= config.min_training_epochs and view.ready:
            return _Verdict(
                _ADVANCE,
                f"TRAINING done: {n} epochs (min {config.min_training_epochs}), seed ready{loss}; start grafting",
                lifecycle_pb2.SEED_STAGE_GRAFTING,
            )
        if n >= config.stage_timeout_epochs:
            return _Verdict(
                lifecycle_pb2.COMMAND_TYPE_CANCEL_GERMINATION,
                f"TRAINING not ready after {n} epochs (timeout {config.stage_timeout_epochs}){loss}; "
                "cancelling before it touches the host",
            )
        return _Verdict(None, f"TRAINING epoch {n} (min {config.min_training_epochs}), ready={view.ready}{loss}")

    def _grafting(self, state: RunState, obs: Observation, view: SeedView, a: Adaptation) -> _Verdict:
        harm = self._harm_text(obs, a)
        if view.ready:
            return _Verdict(
                _ADVANCE,
                f"GRAFTING done: alpha reached {view.features.alpha:.2f}; stabilize"
                + (f" ({harm}: cull at EVALUATING)" if harm else ""),
                lifecycle_pb2.SEED_STAGE_STABILIZATION,
            )
        text = f"GRAFTING: alpha {view.features.alpha:.2f}, not ready"
        return _Verdict(
            None, text + (f"; {harm}: CULL is not legal while GRAFTING, cull at EVALUATING" if harm else "")
        )

    def _stabilization(self, state: RunState, obs: Observation, view: SeedView, a: Adaptation) -> _Verdict:
        harm = self._harm_text(obs, a)
        if view.ready:
            return _Verdict(
                _ADVANCE,
                "STABILIZATION done; evaluate" + (f" ({harm}: cull at EVALUATING)" if harm else ""),
                lifecycle_pb2.SEED_STAGE_EVALUATING,
            )
        text = f"STABILIZATION epoch {a.epochs_in_stage(obs.epoch)}, not ready"
        return _Verdict(
            None,
            text + (f"; {harm}: CULL is not legal while STABILIZING, cull at EVALUATING" if harm else ""),
        )

    def _evaluating(self, state: RunState, obs: Observation, view: SeedView, a: Adaptation) -> _Verdict:
        config, n = self._config, a.epochs_in_stage(obs.epoch)
        measured = view.telemetry.eval_gain if view.ready and view.telemetry is not None else None
        harm, excused = self._harm(obs, a, measured)
        if harm:
            return _Verdict(_CULL, f"harm: {harm}")
        if not view.ready or view.telemetry is None:
            missing = "not ready" if not view.ready else "no telemetry, so no eval gain"
            if n >= config.stage_timeout_epochs:
                return _Verdict(
                    _CULL,
                    f"EVALUATING gave no result in {n} epochs ({missing}); timeout {config.stage_timeout_epochs}",
                )
            return _Verdict(None, f"EVALUATING epoch {n}: {missing}")
        gain, params = view.telemetry.eval_gain, view.telemetry.parameter_count
        numbers = f"eval gain {gain:+.4f} vs min {config.min_eval_gain:+.4f}"
        if gain <= config.min_eval_gain:
            return _Verdict(
                _CULL,
                f"negative evaluation: {numbers} ({obs.shown(obs.score)}, at germination {obs.shown(a.pre_metric)})",
            )
        if params == 0:
            target = a.pre_metric + config.fossilize_min_improvement
            improvement = (
                f"{obs.shown(obs.score)} vs {obs.shown(target)} (at germination {obs.shown(a.pre_metric)} + margin)"
            )
            if obs.score >= target:
                return _Verdict(
                    lifecycle_pb2.COMMAND_TYPE_FOSSILIZE,
                    f"positive evaluation of a fixed-function kernel: {numbers}, {improvement}; fossilize",
                )
            return _Verdict(_CULL, f"fixed-function kernel: {numbers} but no improvement: {improvement}")
        return _Verdict(
            _ADVANCE,
            f"positive evaluation: {numbers}; fine-tune {params} params on the task loss{excused}",
            lifecycle_pb2.SEED_STAGE_FINE_TUNING,
        )

    def _fine_tuning(self, state: RunState, obs: Observation, view: SeedView, a: Adaptation) -> _Verdict:
        config, n = self._config, a.epochs_in_stage(obs.epoch)
        harm, excused = self._harm(obs, a, a.eval_gain)
        if harm:
            return _Verdict(_CULL, f"harm: {harm}")
        if n < config.fine_tune_epochs:
            return _Verdict(None, f"FINE_TUNING epoch {n} of {config.fine_tune_epochs}{excused}")
        target = a.pre_metric + config.fossilize_min_improvement
        numbers = (
            f"{obs.shown(obs.score)} vs {obs.shown(target)} (at germination {obs.shown(a.pre_metric)} + "
            f"{config.fossilize_min_improvement}), eval gain {a.eval_gain:+.4f} "
            f"vs min {config.min_eval_gain:+.4f}"
        )
        if obs.score >= target and a.eval_gain > config.min_eval_gain:
            return _Verdict(lifecycle_pb2.COMMAND_TYPE_FOSSILIZE, f"measured improvement after {n} epochs: {numbers}")
        return _Verdict(_CULL, f"no improvement after {n} epochs of fine-tuning: {numbers}")

    def _harm(self, obs: Observation, a: Adaptation, eval_gain: float | None) -> tuple[str, str]:
        """(why to cull on harm, or ""; a note when a drop is excused by the seed's positive eval gain)."""
        harm = self._harm_text(obs, a)
        if harm and eval_gain is not None and eval_gain > self._config.min_eval_gain:
            held = obs.boundary.metric_word
            return "", f"; {harm}, but the seed's eval gain is {eval_gain:+.4f}: it holds {held} up, keep it for now"
        return harm, ""

    def _harm_text(self, obs: Observation, a: Adaptation) -> str:
        drop = a.pre_metric - obs.score
        if drop > self._config.harm_threshold:
            return (
                f"{obs.shown(obs.score)} is {drop:.4f} worse than {obs.shown(a.pre_metric)} at germination "
                f"(threshold {self._config.harm_threshold})"
            )
        return ""


@dataclass(frozen=True)
class _Verdict:
    """A gate's answer: a command (None to wait), why, and the target stage of an ADVANCE."""

    command_type: CommandType | None
    reason: str
    target: SeedStage = lifecycle_pb2.SEED_STAGE_UNSPECIFIED


def _growth_kind(view: SeedView) -> int:
    return view.descriptor.growth_kind or blueprint_pb2.GROWTH_KIND_DEPTH


def _parameter_count(view: SeedView) -> int | None:
    return int(view.telemetry.parameter_count) if view.telemetry is not None else None


_STAGE_GATES = {
    lifecycle_pb2.SEED_STAGE_GERMINATED: LifecycleGates._germinated,
    lifecycle_pb2.SEED_STAGE_TRAINING: LifecycleGates._training,
    lifecycle_pb2.SEED_STAGE_GRAFTING: LifecycleGates._grafting,
    lifecycle_pb2.SEED_STAGE_STABILIZATION: LifecycleGates._stabilization,
    lifecycle_pb2.SEED_STAGE_EVALUATING: LifecycleGates._evaluating,
    lifecycle_pb2.SEED_STAGE_FINE_TUNING: LifecycleGates._fine_tuning,
}
