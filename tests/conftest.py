"""Shared pytest configuration. Fixture modules live in tests/fixtures/."""

pytest_plugins: list[str] = [
    "tests.fixtures.servers",
    "tests.fixtures.nats",
    "tests.fixtures.postgres",
    "tests.fixtures.seaweedfs",
    "tests.fixtures.tracing",
]
