"""Oona: Esper's message bus.

Domain code depends on `esper.oona.api.Bus` only. `esper.oona.memory.InProcessBus`
runs in one process (embedded mode); `esper.oona.jetstream.JetStreamBus` runs on
NATS JetStream (mesh mode). Envelopes are built and checked by `esper.oona.envelope`,
subject names come from `esper.oona.subjects`.
"""
