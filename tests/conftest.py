"""Shared pytest configuration. Fixtures and helpers every tier shares live in tests/support/."""

pytest_plugins: list[str] = [
    "tests.support.servers",
    "tests.support.nats",
    "tests.support.postgres",
    "tests.support.seaweedfs",
    "tests.support.tracing",
]
