"""Fixtures shared by every test; each lives in tests/support/ with the one concern it serves."""

pytest_plugins = [
    "tests.support.services",
    "tests.support.database",
    "tests.support.emulator",
    "tests.support.stack",
    "tests.support.api",
    "tests.support.provider",
    "tests.support.outages",
    "tests.support.service",
    "tests.support.receiver",
    "tests.support.browser",
]
