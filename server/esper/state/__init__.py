"""The epoch-boundary state packet: packing seed telemetry into Leyline's compact layout."""

from esper.state.packet import SeedFeatures, layout_hash, pack_system_state, unpack_seed_features

__all__ = ["SeedFeatures", "layout_hash", "pack_system_state", "unpack_seed_features"]
