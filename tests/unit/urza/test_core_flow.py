"""The whole asset pipeline through the in-process hub (also run on PostgreSQL and over gRPC)."""

from __future__ import annotations

from esper.urza.hub import UrzaHub
from tests.support.urza import run_core_flow


def test_core_flow_on_sqlite(hub: UrzaHub) -> None:
    run_core_flow(hub)
