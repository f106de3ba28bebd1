"""Typed clients for Esper's gRPC services, one facade per subsystem on a shared base."""
