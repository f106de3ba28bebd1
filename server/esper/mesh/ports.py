"""The well-known ports of a deployed mesh (containers, Kubernetes).

A local mesh (`esper up`) takes free ports instead and writes them to mesh.json;
deploy/ uses these, and a test checks that every manifest agrees with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# gRPC port of each subsystem's server.
GRPC_PORTS: Mapping[str, int] = MappingProxyType(
    {
        "urza": 50051,
        "tezzeret": 50052,
        "urabrask": 50053,
        "karn": 50054,
        "tamiyo": 50055,
        "simic": 50056,
        "nissa": 50057,
        "tolaria": 50058,
    }
)

# Prometheus /metrics port of each subsystem's server.
METRICS_PORTS: Mapping[str, int] = MappingProxyType(
    {
        "urza": 9451,
        "tezzeret": 9452,
        "urabrask": 9453,
        "karn": 9454,
        "tamiyo": 9455,
        "simic": 9456,
        "nissa": 9457,
        "tolaria": 9458,
    }
)

# Nissa's mission-control web page (HTTP).
MISSION_CONTROL_PORT = 9480

# The third-party components of deploy/.
NATS_PORT = 4222
POSTGRES_PORT = 5432
S3_PORT = 8333
OTLP_GRPC_PORT = 4317
JAEGER_UI_PORT = 16686
PROMETHEUS_PORT = 9090
