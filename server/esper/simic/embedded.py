"""Simic beside an embedded run: transitions over the in-process bus into a local replay store.

`esper run` wraps its run collaborators with `recording_collaborators`: Tamiyo publishes every
boundary's transition on an in-process Oona, a local SimicService (SQLite and an
object folder under `experience_dir`) consumes and stores them exactly as the mesh's
Simic does from NATS, and the same local Simic is where Tamiyo looks up a policy id
it does not know (a policy trained with `esper policy train`). The bus delivers on
its own thread, so storing never holds up a boundary; closing the run flushes it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from esper.config import EsperConfig
from esper.simic.config import SimicConfig, TrainingConfig
from esper.tolaria.collaborators import CollaboratorsFactory, RunCollaborators

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0


def local_simic(experience_dir: str, *, training: TrainingConfig | None = None) -> Any:
    """The SimicService of a local replay store (created on first use). Never publishes on its own."""
    from esper.simic.service import SimicService

    return SimicService.open(SimicConfig(data_dir=experience_dir, training=training or TrainingConfig(gate_suite="")))


def recording_collaborators(base: CollaboratorsFactory, experience_dir: str) -> CollaboratorsFactory:
    """`base`'s collaborators, with Tamiyo recording transitions into the replay store in `experience_dir`."""

    def factory(config: EsperConfig) -> RunCollaborators:
        from esper.oona.config import OonaConfig
        from esper.oona.memory import InProcessBus
        from esper.simic.intake import TransitionIntake
        from esper.tamiyo import TamiyoController
        from esper.tamiyo.bus import TransitionPublisher

        simic = local_simic(experience_dir)
        bus = InProcessBus(OonaConfig(client_name="esper-run"), worker_thread=True)
        subscription = TransitionIntake(simic).subscribe(bus)
        try:
            services = base(config)
        except BaseException:
            subscription.stop()
            bus.close()
            simic.close()
            raise
        sink = TransitionPublisher(bus, source="tamiyo")

        def make_controller(model: Any) -> TamiyoController:
            return TamiyoController(model, config.tamiyo, kernels=services.urza, policies=simic, transitions=sink)

        def close() -> None:
            try:
                services.close()
            finally:
                if not bus.flush(FLUSH_SECONDS):
                    logger.warning("some transitions were not stored within %.0f s", FLUSH_SECONDS)
                subscription.stop()
                bus.close()
                simic.close()

        return dataclasses.replace(services, make_controller=make_controller, close=close)

    return factory
