"""Shared fixtures live in tests/fixtures/<area>.py, one module per subsystem."""

pytest_plugins = [
    "tests.fixtures.foundation",
    "tests.fixtures.broker",
    "tests.fixtures.gate",
    "tests.fixtures.counter",
    "tests.fixtures.dashboard",
    "tests.fixtures.e2e",
    "tests.fixtures.postgres",
]
